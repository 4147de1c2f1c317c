//! Confab's wire protocol, shared by the server and the browser client.
//!
//! Every WebSocket text frame carries exactly one JSON object with a `type` field
//! (serde's internally tagged representation). Clients send [`ClientMsg`], the server
//! sends [`ServerMsg`]. Because both ends compile these same types, a change here is a
//! change to the protocol: bump [`PROTOCOL_VERSION`] when it is not backwards compatible
//! and keep `docs/PROTOCOL.md` in step.
//!
//! The validation rules for user-supplied values ([`DisplayName`], [`RoomName`],
//! [`Body`]) live here too, once, so the client can reject bad input before sending it
//! and the server enforces exactly the same rules.

use serde::{Deserialize, Serialize};

pub mod api;
pub mod close;
pub mod mention;
mod validate;

pub use validate::{
    Body, ClientId, DisplayName, Emoji, Password, RoomName, Username, ValidationError,
    has_invisible_chars,
};

/// Version of the protocol described by this crate. A client announces the version it
/// speaks in [`ClientMsg::Hello`]; the server refuses any other with
/// [`ErrorCode::UnsupportedProtocol`].
pub const PROTOCOL_VERSION: u32 = 8;

/// The room every server has, which cannot be deleted.
pub const DEFAULT_ROOM: &str = "general";

/// Room ids starting with this are made by the server (private rooms, direct
/// conversations); nobody can create a public room by such a name. Because the server
/// picks them, a guessed id tells nothing: a non-member gets `unknown_room` whether the
/// room exists or not.
pub const RESERVED_ROOM_PREFIX: char = '_';

/// Guests' usernames start with this, which no account's username can.
pub const GUEST_PREFIX: char = '~';

/// Limits both ends agree on. The server enforces them; the client uses them to give
/// feedback before the server has to say no.
pub mod limits {
    /// Largest WebSocket message (and frame) the server accepts, in bytes. Larger ones
    /// are answered with close code [`crate::close::MESSAGE_TOO_BIG`].
    pub const MAX_FRAME_BYTES: usize = 64 * 1024;
    /// Display names are 1..=32 characters after trimming.
    pub const MAX_NAME_CHARS: usize = 32;
    /// Room names are 1..=40 characters of `[a-z0-9-_]`.
    pub const MAX_ROOM_CHARS: usize = 40;
    /// Message bodies are 1..=4000 characters after trimming.
    pub const MAX_BODY_CHARS: usize = 4000;
    /// How many recent messages a client receives when it joins a room afresh.
    pub const HISTORY_ON_JOIN: usize = 100;
    /// Most messages in one `replay` page when resuming from a sequence number.
    pub const REPLAY_PAGE: usize = 500;
    /// Most messages one `fetch_history` returns (and the default).
    pub const HISTORY_PAGE: usize = 100;
    /// Most bytes of encoded messages in one page of history (`joined`, `replay`,
    /// `history`), besides the message that crosses it: a page ends early rather than
    /// grow past it. Large messages (a body of control characters escapes to six bytes a
    /// character) would otherwise make a 500-message page many megabytes.
    pub const MAX_PAGE_BYTES: usize = 256 * 1024;
    /// Client ids are 1..=64 characters of `[A-Za-z0-9_-]`.
    pub const MAX_CLIENT_ID_CHARS: usize = 64;
    /// A client should send at most one `typing` per room in this interval; the server
    /// drops the excess.
    pub const TYPING_THROTTLE_MS: u64 = 2_000;
    /// A typing indicator expires this long after the last `typing` event for it.
    pub const TYPING_TTL_MS: u64 = 5_000;
    /// Account usernames: `[a-z0-9_.-]`, case-insensitive, this many characters.
    pub const MIN_USERNAME_CHARS: usize = 2;
    pub const MAX_USERNAME_CHARS: usize = 32;
    /// Passwords: at least this long (NIST SP 800-63B), and at most this long so that
    /// hashing a request cannot be made arbitrarily expensive.
    pub const MIN_PASSWORD_CHARS: usize = 8;
    pub const MAX_PASSWORD_BYTES: usize = 1024;
    /// Reactions (one person, one emoji) one message may carry in all.
    pub const MAX_REACTIONS_PER_MESSAGE: usize = 500;
    /// Different emoji one message may carry.
    pub const MAX_EMOJI_PER_MESSAGE: usize = 20;
    /// An emoji is one grapheme of at most this many bytes (flags, families and skin
    /// tones are several code points).
    pub const MAX_EMOJI_BYTES: usize = 32;
    /// A reply's quote of the message it answers: the first line, cut to this many
    /// characters.
    pub const QUOTE_CHARS: usize = 120;
    /// Unread messages and mentions are counted up to this many per room; past it
    /// clients show "9999+".
    pub const MAX_UNREAD_COUNT: u32 = 9_999;
    /// Files one message may share.
    pub const MAX_FILES_PER_MESSAGE: usize = 10;
    /// Characters of a shared file's name kept (longer names are cut, keeping the
    /// extension).
    pub const MAX_FILE_NAME_CHARS: usize = 200;
    /// Search results per page.
    pub const SEARCH_PAGE: usize = 20;
    /// Characters of a search query.
    pub const MAX_QUERY_CHARS: usize = 256;
    /// Messages on each side of the one asked for by [`crate::ClientMsg::FetchAround`].
    pub const AROUND_PAGE: usize = 50;
}

/// Messages a client sends to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// First message of every session: the protocol version the client speaks.
    /// Answered by [`ServerMsg::Welcome`] or an error.
    ///
    /// Who the client is comes from the session cookie checked before the upgrade
    /// (see `docs/PROTOCOL.md`). `name` is for guests only (servers started with
    /// `--allow-guests`): the display name the guest wants. Signed-in users omit it.
    Hello {
        protocol: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Ask for the list of rooms; answered by [`ServerMsg::Rooms`].
    ListRooms,
    /// Create a room, owned by the sender.
    ///
    /// A public room's id is `room`, and everyone hears of it in their next
    /// [`ServerMsg::RoomsChanged`]. A private room gets an id chosen by the server, `room`
    /// is its title, and only the creator (its first member) hears of it. Either way the
    /// creator is answered at once with a [`ServerMsg::RoomsChanged`] naming the new room
    /// in `created`. Rate-limited per person, with renaming, deleting, inviting and
    /// removing (`rate_limited`).
    /// Creating does not join: send [`ClientMsg::Join`] next.
    CreateRoom {
        room: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        private: bool,
    },
    /// Join a room, or re-join it after a reconnect.
    ///
    /// Without `after`, answered by [`ServerMsg::Joined`] with the most recent history.
    /// With `after` (the highest `seq` the client has of this room; 0 for none), the
    /// server replays every message after it: zero or more [`ServerMsg::Replay`] pages
    /// (send `join` again with the last `seq` of each page) and then
    /// [`ServerMsg::Joined`] with the rest, after which live messages follow with no
    /// gap and no duplicate.
    Join {
        room: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
    },
    /// Leave a room; answered by [`ServerMsg::Left`].
    Leave { room: String },
    /// Post a message to a room the client has joined. `client_id` is the client's own
    /// id for this message (unique per sender); sending again with the same id, after a
    /// reconnect, is acknowledged without storing the message twice.
    ///
    /// `reply_to` makes the message a reply to the message with that `seq` in the same
    /// room; the stored message then carries a [`Quote`] of it.
    ///
    /// `files` shares files uploaded to this room by the sender (`POST /api/files`, see
    /// [`api`]), by the ids the uploads answered, at most
    /// [`limits::MAX_FILES_PER_MESSAGE`]; each upload can be shared once. With files
    /// the body may be empty. An id that is not such an upload is refused with
    /// `unknown_file`.
    Send {
        room: String,
        body: String,
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<u64>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<String>,
    },
    /// Replace the text of the sender's own message `seq` (body rules as for `send`).
    /// Acknowledged with [`ServerMsg::Ack`] (its `seq` the change's place in the room's
    /// log), then everyone in the room receives [`ServerMsg::Changed`]. Rate-limited per
    /// person (`rate_limited`). Like every change, `client_id` makes a repeat harmless:
    /// it is answered with the original result.
    Edit {
        room: String,
        seq: u64,
        body: String,
        client_id: String,
    },
    /// Delete message `seq`: the sender's own, or any in a room the sender owns or as an
    /// administrator. Its text leaves the store; everyone sees a tombstone.
    Delete {
        room: String,
        seq: u64,
        client_id: String,
    },
    /// Add the sender's reaction `emoji` to message `seq` (nothing changes if it is
    /// there already).
    React {
        room: String,
        seq: u64,
        emoji: String,
        client_id: String,
    },
    /// Take back the sender's reaction `emoji` from message `seq`.
    Unreact {
        room: String,
        seq: u64,
        emoji: String,
        client_id: String,
    },
    /// The person has read `room` up to `seq`: their read marker, shared by all their
    /// devices, moves there (it never moves back). Their sessions receive
    /// [`ServerMsg::Read`]. For accounts; a guest's is ignored.
    MarkRead { room: String, seq: u64 },
    /// Mute or unmute a room for this person (every device): a muted room raises no
    /// notification, and its unread count shows quietly.
    Mute { room: String, muted: bool },
    /// Ask for older messages of a joined room: those with `seq < before`, newest
    /// [`limits::HISTORY_PAGE`] (or `limit`, if smaller). Answered by
    /// [`ServerMsg::History`].
    FetchHistory {
        room: String,
        before: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Ask for the messages around `seq` in a room the client has joined (a search
    /// result, a permalink far back): up to [`limits::AROUND_PAGE`] on each side of it,
    /// and the message itself. Answered by [`ServerMsg::Around`].
    FetchAround { room: String, seq: u64 },
    /// Search every message the person may see: public rooms, and the private rooms and
    /// direct conversations they are a member of. `query` is words (`rust`), prefixes
    /// (`rus*`), phrases (`"borrow checker"`) and filters (`in:room`, `from:user`,
    /// `before:YYYY-MM-DD`, `after:YYYY-MM-DD`, `on:YYYY-MM-DD`, dates in UTC), at most
    /// [`limits::MAX_QUERY_CHARS`]. Results come newest first, [`limits::SEARCH_PAGE`]
    /// at a time: `before` asks for the page after the one that ended with the message
    /// whose `id` it is. Answered by [`ServerMsg::SearchResults`], or `invalid_query`.
    Search {
        query: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
    },
    /// The user is typing in a room. Send at most once per
    /// [`limits::TYPING_THROTTLE_MS`] while typing continues.
    Typing { room: String },
    /// Open (creating the first time) the direct conversation with `user`, and join
    /// it. Both people receive [`ServerMsg::RoomsChanged`] with it; the sender then gets
    /// [`ServerMsg::Joined`].
    OpenDirect { user: String },
    /// Add `user` to a private room the sender is a member of. The invitee receives
    /// [`ServerMsg::RoomsChanged`] with the room in it, once the invitation is stored.
    Invite { room: String, user: String },
    /// Take `user` out of a room (owner only). Their sessions receive
    /// [`ServerMsg::Left`] and a room list without it.
    Remove { room: String, user: String },
    /// Give a room a new title (owner only). Its id does not change.
    RenameRoom { room: String, title: String },
    /// Delete a room and its messages (owner only; `general` cannot be deleted).
    DeleteRoom { room: String },
    /// Is the connection still alive? Answered by [`ServerMsg::Pong`]. Browsers cannot
    /// see WebSocket pings, and a socket over a network that went away can look open for
    /// minutes: a client pings after a quiet spell and reconnects when no pong comes.
    Ping,
}

/// Messages the server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The hello was accepted: who the session is and the rooms it can see.
    Welcome {
        protocol: u32,
        /// The store's identity, made when its data directory was created. A client that
        /// saw another epoch before forgets what it kept of the rooms (their `seq`s
        /// number another history) and joins them afresh.
        epoch: String,
        you: Person,
        rooms: Vec<RoomInfo>,
    },
    /// Every room this client can see, answering [`ClientMsg::ListRooms`]. Changes
    /// after `welcome` come as [`ServerMsg::RoomsChanged`].
    Rooms { rooms: Vec<RoomInfo> },
    /// Some rooms this client can see changed: `rooms` are new or changed entries
    /// (replace the entry with the same `name`, or add it), `removed` the ids of rooms it
    /// can no longer see. Changes made by others are collected and sent at most once per
    /// interval (one second by default); the answer to the client's own `create_room`,
    /// `rename_room` or `delete_room` comes at once, and `created` then names the room
    /// its `create_room` made.
    RoomsChanged {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rooms: Vec<RoomInfo>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removed: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created: Option<String>,
    },
    /// The client is in `room` and receives its live traffic from now on. `members` is
    /// everyone who belongs to the room; `online` the usernames of those connected to it
    /// now. `history` is the recent messages (fresh join) or the rest of a replay,
    /// oldest first.
    Joined {
        room: String,
        /// The people online in the room now; in private rooms and direct
        /// conversations (whose members come by invitation) every member. Never every
        /// person who ever joined a public room: that could be tens of thousands.
        members: Vec<Person>,
        /// How many people belong to the room.
        #[serde(default)]
        member_count: usize,
        online: Vec<String>,
        /// The room's log is in `history` (with what the client had) up to this `seq`:
        /// where a later resume starts from. Live events follow it.
        through: u64,
        /// The person's read marker in the room: the last `seq` they read (accounts
        /// only; 0 for guests).
        #[serde(default)]
        read: u64,
        /// Messages from others after `read` that are not deleted, up to
        /// [`limits::MAX_UNREAD_COUNT`].
        #[serde(default)]
        unread: u32,
        /// Of those, the ones that mention the person.
        #[serde(default)]
        mentions: u32,
        /// The recent messages (fresh join) or the rest of a replay, in their current
        /// state, in `seq` order. Last, so the server can splice in JSON made on a reader
        /// thread.
        history: Vec<ChatMessage>,
    },
    /// One page of a replay (see [`ClientMsg::Join`]): every message created or changed
    /// in the room's log after the `after` asked for and up to `through`, once each, in
    /// its current state. More follow after the client joins again with `after:
    /// through`.
    Replay {
        room: String,
        through: u64,
        messages: Vec<ChatMessage>,
    },
    /// Older messages, answering [`ClientMsg::FetchHistory`]. `more` tells whether
    /// even older ones exist.
    History {
        room: String,
        messages: Vec<ChatMessage>,
        more: bool,
    },
    /// The messages around `seq`, answering [`ClientMsg::FetchAround`], oldest first.
    /// `older` and `newer` tell whether the room has messages before and after them.
    Around {
        room: String,
        seq: u64,
        messages: Vec<ChatMessage>,
        older: bool,
        newer: bool,
    },
    /// A page of search results, answering [`ClientMsg::Search`] (its `query` and
    /// `before` repeated, so a client can drop an answer to a search it replaced).
    /// `more` tells whether another page follows: ask with `before` set to the `id` of
    /// the last hit's message.
    SearchResults {
        query: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        hits: Vec<SearchHit>,
        more: bool,
    },
    /// The message the client sent with `client_id` is stored (durably) as `id`/`seq`.
    /// Sent before the message itself is broadcast.
    Ack {
        room: String,
        client_id: String,
        id: u64,
        seq: u64,
        ts: i64,
    },
    /// The client is out of `room` and receives nothing more from it: it left, was
    /// removed, or the room was deleted.
    Left { room: String },
    /// Who belongs to a room the client is in changed (an invitation, a removal, a
    /// first join, a leave): the whole new list.
    Members { room: String, members: Vec<Person> },
    /// A message posted to a room the client is in (its own messages included: the
    /// server's copy is the authoritative one, with id and timestamp).
    Message(ChatMessage),
    /// A message of a room the client is in was edited, deleted or reacted to. Apply it
    /// only if `seq` is greater than the `rev` of the client's copy of the message (a
    /// copy read after the change already shows it).
    Changed(Change),
    /// The person's read marker in `room` moved to `seq` (on this device or another).
    Read { room: String, seq: u64 },
    /// Someone came online in or went offline from a room the client is in (their
    /// first session joined it, or their last one left).
    Presence {
        room: String,
        who: Person,
        event: PresenceEvent,
        /// How many people belong to the room now: an arrival may be a public room's
        /// new member, a departure the end of a membership.
        #[serde(default)]
        member_count: usize,
    },
    /// Someone is typing in a room the client is in. Expires after
    /// [`limits::TYPING_TTL_MS`] unless repeated, and ends when their message arrives.
    Typing { room: String, who: Person },
    /// The answer to [`ClientMsg::Ping`].
    Pong,
    /// A request could not be honoured. The connection stays open. `room` names the
    /// room the refused request was about, and `client_id` the refused `send`, when
    /// there was one.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// With `rate_limited`: milliseconds until a request would be accepted again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// A room as listed to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// The room's id: what every request about it names. Never changes.
    pub name: String,
    /// What to call it; the owner may change it.
    pub title: String,
    pub kind: RoomKind,
    /// Handle of the member who created it and may rename, delete and remove members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Members online in the room now.
    pub online: u32,
    /// In a direct conversation: the other person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<Person>,
    /// The user this list is for belongs to the room: every client of theirs (each tab,
    /// each device, after a reload) should be in it, so they miss nothing said there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub member: bool,
    /// The user this list is for muted the room (see [`ClientMsg::Mute`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
}

/// Who can see and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Listed to every signed-in user; anyone may join.
    Public,
    /// Visible to its members only; joined by invitation from a member.
    Private,
    /// A conversation between two users.
    Direct,
}

/// A person as clients see them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Person {
    /// Unique username: the account's username, or `~` and the name for a guest.
    pub user: String,
    /// Display name.
    pub name: String,
    /// A guest (no account); clients mark them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub guest: bool,
}

/// A chat message as stored and delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-assigned, unique and increasing across the server.
    pub id: u64,
    pub room: String,
    /// Position in the room: 1, 2, 3… with no gaps, assigned when the message is
    /// committed to storage.
    pub seq: u64,
    /// Handle of the sender (see [`Person::user`]).
    pub from: String,
    /// Display name of the sender.
    pub name: String,
    /// The text; empty once deleted.
    pub body: String,
    /// Server time when the message was accepted, in milliseconds since the Unix epoch.
    pub ts: i64,
    /// The message this one answers, as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Quote>,
    /// When the text was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited: Option<i64>,
    /// Deleted: a tombstone, with no text and no reactions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Reactions, in the order their emoji were first used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The `seq` of the last change this copy shows (0: none since it was sent). A
    /// [`ServerMsg::Changed`] with a `seq` at or below it is already in it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rev: u64,
    /// Files shared with the message (none once it is deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<Attachment>,
}

/// A file shared in a room, as a message carries it. Downloaded from
/// `GET /api/files/{id}` (its type taken from its content, not from its name) and, when
/// `image` is set, previewed from `GET /api/files/{id}/thumb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The upload's id: unguessable, and only good for people who may see the room.
    pub id: String,
    /// The name it was uploaded with (cleaned of path parts and control characters).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The media type found in its first bytes; `application/octet-stream` when none.
    pub mime: String,
    /// Set for an image the server could preview: its size in pixels. Such a file is
    /// shown inline; every other one is downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSize>,
}

/// Width and height of an image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSize {
    pub width: u32,
    pub height: u32,
}

/// One search result: the message as it is now, and where the query matched its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub message: ChatMessage,
    /// Byte ranges `[start, end)` of `message.body` that matched, in order and not
    /// overlapping, each on UTF-8 character boundaries. The body stays plain text: a
    /// client marks these ranges, it never renders markup from the server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<[u32; 2]>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ChatMessage {
    /// The `seq` of the last change this copy shows: its own `seq` if none.
    pub fn revision(&self) -> u64 {
        self.rev.max(self.seq)
    }

    /// Applies a change to this message, if the copy does not show it yet. Returns
    /// whether anything changed.
    pub fn apply(&mut self, change: &Change) -> bool {
        if change.seq <= self.revision() || change.target != self.seq {
            return false;
        }
        self.rev = change.seq;
        match &change.change {
            ChangeKind::Edited { body } => {
                if !self.deleted {
                    self.body.clone_from(body);
                    self.edited = Some(change.ts);
                }
            }
            ChangeKind::Deleted => {
                self.deleted = true;
                self.body.clear();
                self.reactions.clear();
                self.files.clear();
                self.edited = None;
            }
            ChangeKind::Reacted { emoji } => {
                if self.deleted {
                    return true;
                }
                match self.reactions.iter_mut().find(|r| r.emoji == *emoji) {
                    Some(r) if r.users.contains(&change.by) => {}
                    Some(r) => r.users.push(change.by.clone()),
                    None => self.reactions.push(Reaction {
                        emoji: emoji.clone(),
                        users: vec![change.by.clone()],
                    }),
                }
            }
            ChangeKind::Unreacted { emoji } => {
                if let Some(at) = self.reactions.iter().position(|r| r.emoji == *emoji) {
                    self.reactions[at].users.retain(|u| *u != change.by);
                    if self.reactions[at].users.is_empty() {
                        self.reactions.remove(at);
                    }
                }
            }
        }
        true
    }
}

/// What a reply shows of the message it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub seq: u64,
    /// Handle and display name of its sender.
    pub from: String,
    pub name: String,
    /// Its first line, cut to [`limits::QUOTE_CHARS`]; empty once deleted.
    pub excerpt: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// One emoji on a message, and who reacted with it (usernames, first first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub emoji: String,
    pub users: Vec<String>,
}

/// One change to a message: an entry of its room's log, like a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub room: String,
    /// The change's place in the room's log.
    pub seq: u64,
    /// The `seq` of the message changed.
    pub target: u64,
    /// Handle of who changed it.
    pub by: String,
    /// Server time of the change.
    pub ts: i64,
    pub change: ChangeKind,
}

/// What a [`Change`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    /// The author replaced the text.
    Edited { body: String },
    /// The message is a tombstone now.
    Deleted,
    /// `by` added this reaction.
    Reacted { emoji: String },
    /// `by` took this reaction back.
    Unreacted { emoji: String },
}

/// Whether a presence event is an arrival or a departure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceEvent {
    Joined,
    Left,
}

/// Why a request failed. Stable strings on the wire: clients match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON.
    BadJson,
    /// The JSON has a `type` this protocol version does not know.
    UnknownType,
    /// The `type` is known but fields are missing or of the wrong kind. (Unknown extra
    /// fields are ignored, so a newer client can talk to an older server.)
    BadMessage,
    /// The hello announced a protocol version the server does not speak.
    UnsupportedProtocol,
    /// Anything but `hello` was sent before a successful `hello`.
    HelloRequired,
    /// A second `hello` on a session that already has a name.
    AlreadyIdentified,
    /// The display name breaks the rules (see [`DisplayName`]).
    InvalidName,
    /// Someone online already uses this display name (compared case-insensitively).
    NameTaken,
    /// The room name breaks the rules (see [`RoomName`]).
    InvalidRoom,
    /// No room by that name exists.
    UnknownRoom,
    /// A room by that name already exists.
    RoomExists,
    /// The server holds as many rooms as it is configured to.
    TooManyRooms,
    /// The request needs membership of a room the client has not joined.
    NotInRoom,
    /// The message body breaks the rules (see [`Body`]).
    InvalidBody,
    /// The `client_id` of a `send` breaks the rules (see [`ClientId`]).
    InvalidClientId,
    /// Too many requests in a short time: wait `retry_after_ms` before the next one.
    /// A client that keeps sending regardless is disconnected with close code 1008.
    RateLimited,
    /// The server could not store the message now (storage busy or failing). Retry
    /// later with the same `client_id`.
    Unavailable,
    /// The request needs a right the sender lacks: owning the room, an account rather
    /// than guest access.
    Forbidden,
    /// No account has that username.
    UnknownUser,
    /// The room has no message with that `seq` (or it is deleted, for an edit or a
    /// reaction).
    UnknownMessage,
    /// The emoji of a reaction is not one emoji.
    InvalidEmoji,
    /// The message carries as many reactions, or different emoji, as it may.
    TooManyReactions,
    /// A `send` names a file that is not an unshared upload of the sender's to this room
    /// (or too many files).
    UnknownFile,
    /// A search query that cannot be run; the message says why.
    InvalidQuery,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::BadMessage,
        ErrorCode::UnsupportedProtocol,
        ErrorCode::HelloRequired,
        ErrorCode::AlreadyIdentified,
        ErrorCode::InvalidName,
        ErrorCode::NameTaken,
        ErrorCode::InvalidRoom,
        ErrorCode::UnknownRoom,
        ErrorCode::RoomExists,
        ErrorCode::TooManyRooms,
        ErrorCode::NotInRoom,
        ErrorCode::InvalidBody,
        ErrorCode::InvalidClientId,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Forbidden,
        ErrorCode::UnknownUser,
        ErrorCode::UnknownMessage,
        ErrorCode::InvalidEmoji,
        ErrorCode::TooManyReactions,
        ErrorCode::UnknownFile,
        ErrorCode::InvalidQuery,
    ];

    /// The code as it appears on the wire, for logs and tests.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadMessage => "bad_message",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::AlreadyIdentified => "already_identified",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::UnknownRoom => "unknown_room",
            ErrorCode::RoomExists => "room_exists",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidClientId => "invalid_client_id",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::InvalidEmoji => "invalid_emoji",
            ErrorCode::TooManyReactions => "too_many_reactions",
            ErrorCode::UnknownFile => "unknown_file",
            ErrorCode::InvalidQuery => "invalid_query",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ServerMsg {
    /// Shorthand for an [`ServerMsg::Error`] about no room in particular.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMsg::Error {
            code,
            message: message.into(),
            room: None,
            client_id: None,
            retry_after_ms: None,
        }
    }

    /// Encodes the message as the text of one WebSocket frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain data types cannot fail: no maps with non-string keys,
        // no custom Serialize impls.
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("ServerMsg encodes: {e}"))
    }
}

impl ClientMsg {
    /// Encodes the message as the text of one WebSocket frame.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| unreachable!("ClientMsg encodes: {e}"))
    }

    /// Decodes one frame of client text, telling apart the ways it can be wrong so the
    /// client gets a precise [`ErrorCode`].
    pub fn decode(text: &str) -> Result<ClientMsg, DecodeError> {
        serde_json::from_str(text).map_err(|e| classify(text, e))
    }
}

/// Why a client frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct DecodeError {
    pub code: ErrorCode,
    pub detail: String,
}

/// The `type` values [`ClientMsg`] accepts, for telling "unknown type" from "bad fields".
const CLIENT_TYPES: &[&str] = &[
    "hello",
    "list_rooms",
    "create_room",
    "join",
    "leave",
    "send",
    "edit",
    "delete",
    "react",
    "unreact",
    "mark_read",
    "mute",
    "fetch_history",
    "fetch_around",
    "search",
    "typing",
    "open_direct",
    "invite",
    "remove",
    "rename_room",
    "delete_room",
    "ping",
];

// Only runs on the error path, so parsing a second time to classify costs nothing on
// well-formed traffic.
fn classify(text: &str, err: serde_json::Error) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return DecodeError {
                code: ErrorCode::BadJson,
                detail: format!("not valid JSON: {e}"),
            };
        }
    };
    match value.get("type").and_then(|t| t.as_str()) {
        None => DecodeError {
            code: ErrorCode::BadMessage,
            detail: "expected a JSON object with a string field \"type\"".into(),
        },
        Some(t) if !CLIENT_TYPES.contains(&t) => DecodeError {
            code: ErrorCode::UnknownType,
            detail: format!("unknown message type {t:?}"),
        },
        Some(_) => DecodeError {
            code: ErrorCode::BadMessage,
            detail: err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_examples() -> Vec<ClientMsg> {
        vec![
            ClientMsg::Hello {
                protocol: PROTOCOL_VERSION,
                name: None,
            },
            ClientMsg::ListRooms,
            ClientMsg::CreateRoom {
                room: "rust-help".into(),
                private: false,
            },
            ClientMsg::Join {
                room: "general".into(),
                after: None,
            },
            ClientMsg::Join {
                room: "general".into(),
                after: Some(41),
            },
            ClientMsg::Leave {
                room: "general".into(),
            },
            ClientMsg::Send {
                room: "general".into(),
                body: "hello <b>world</b> \u{1F600}".into(),
                client_id: "k3m9-1".into(),
                reply_to: None,
                files: Vec::new(),
            },
            ClientMsg::Edit {
                room: "general".into(),
                seq: 3,
                body: "hello again".into(),
                client_id: "k3m9-2".into(),
            },
            ClientMsg::Delete {
                room: "general".into(),
                seq: 3,
                client_id: "k3m9-3".into(),
            },
            ClientMsg::React {
                room: "general".into(),
                seq: 3,
                emoji: "\u{1F44D}".into(),
                client_id: "k3m9-4".into(),
            },
            ClientMsg::Unreact {
                room: "general".into(),
                seq: 3,
                emoji: "\u{1F44D}".into(),
                client_id: "k3m9-5".into(),
            },
            ClientMsg::MarkRead {
                room: "general".into(),
                seq: 9,
            },
            ClientMsg::Mute {
                room: "general".into(),
                muted: true,
            },
            ClientMsg::FetchHistory {
                room: "general".into(),
                before: 120,
                limit: Some(50),
            },
            ClientMsg::FetchAround {
                room: "general".into(),
                seq: 7_001,
            },
            ClientMsg::Search {
                query: "from:ada \"borrow checker\" rus*".into(),
                before: Some(88),
            },
            ClientMsg::Typing {
                room: "general".into(),
            },
            ClientMsg::OpenDirect { user: "bob".into() },
            ClientMsg::Invite {
                room: "_pq3x".into(),
                user: "bob".into(),
            },
            ClientMsg::Remove {
                room: "_pq3x".into(),
                user: "bob".into(),
            },
            ClientMsg::RenameRoom {
                room: "_pq3x".into(),
                title: "plans".into(),
            },
            ClientMsg::DeleteRoom {
                room: "_pq3x".into(),
            },
            ClientMsg::Ping,
        ]
    }

    fn grace() -> Person {
        Person {
            user: "grace".into(),
            name: "Grace Hopper".into(),
            guest: false,
        }
    }

    fn server_examples() -> Vec<ServerMsg> {
        let msg = ChatMessage {
            id: 7,
            room: "general".into(),
            seq: 3,
            from: "ada".into(),
            name: "Ada".into(),
            body: "hi\nthere".into(),
            ts: 1_764_000_000_000,
            ..ChatMessage::default()
        };
        let reply = ChatMessage {
            id: 8,
            seq: 5,
            body: "yes @grace".into(),
            reply_to: Some(Quote {
                seq: 3,
                from: "ada".into(),
                name: "Ada".into(),
                excerpt: "hi".into(),
                deleted: false,
            }),
            edited: Some(1_764_000_000_500),
            reactions: vec![Reaction {
                emoji: "\u{1F44D}".into(),
                users: vec!["ada".into(), "grace".into()],
            }],
            rev: 6,
            ..msg.clone()
        };
        let change = |seq, change| Change {
            room: "general".into(),
            seq,
            target: 3,
            by: "ada".into(),
            ts: 1_764_000_001_000,
            change,
        };
        let rooms = vec![
            RoomInfo {
                name: "general".into(),
                title: "general".into(),
                kind: RoomKind::Public,
                owner: None,
                online: 2,
                peer: None,
                member: true,
                muted: false,
            },
            RoomInfo {
                name: "_d0123456789abcdef".into(),
                title: "Grace Hopper".into(),
                kind: RoomKind::Direct,
                owner: None,
                online: 1,
                peer: Some(grace()),
                member: true,
                muted: true,
            },
        ];
        vec![
            ServerMsg::Welcome {
                protocol: PROTOCOL_VERSION,
                epoch: "4f0c2a9e8b7d6c5e4f3a2b1c0d9e8f7a".into(),
                you: Person {
                    user: "~ada".into(),
                    name: "Ada".into(),
                    guest: true,
                },
                rooms: rooms.clone(),
            },
            ServerMsg::Rooms {
                rooms: rooms.clone(),
            },
            ServerMsg::RoomsChanged {
                rooms,
                removed: vec!["old-news".into()],
                created: Some("_pq3x".into()),
            },
            ServerMsg::Joined {
                room: "general".into(),
                members: vec![grace()],
                member_count: 7,
                online: vec!["ada".into(), "grace".into()],
                history: vec![msg.clone(), reply.clone()],
                through: 6,
                read: 3,
                unread: 1,
                mentions: 1,
            },
            ServerMsg::Replay {
                room: "general".into(),
                messages: vec![msg.clone()],
                through: 4,
            },
            ServerMsg::History {
                room: "general".into(),
                messages: vec![msg.clone()],
                more: true,
            },
            ServerMsg::Around {
                room: "general".into(),
                seq: 3,
                messages: vec![msg.clone(), reply.clone()],
                older: true,
                newer: false,
            },
            ServerMsg::SearchResults {
                query: "hello".into(),
                before: None,
                hits: vec![SearchHit {
                    message: ChatMessage {
                        files: vec![Attachment {
                            id: "f_8Jk2".into(),
                            name: "screenshot.png".into(),
                            size: 48_213,
                            mime: "image/png".into(),
                            image: Some(ImageSize {
                                width: 1280,
                                height: 800,
                            }),
                        }],
                        ..msg.clone()
                    },
                    marks: vec![[0, 5]],
                }],
                more: false,
            },
            ServerMsg::Ack {
                room: "general".into(),
                client_id: "k3m9-1".into(),
                id: 7,
                seq: 3,
                ts: 1_764_000_000_000,
            },
            ServerMsg::Left {
                room: "general".into(),
            },
            ServerMsg::Members {
                room: "general".into(),
                members: vec![grace()],
            },
            ServerMsg::Message(msg),
            ServerMsg::Changed(change(
                10,
                ChangeKind::Edited {
                    body: "hi again".into(),
                },
            )),
            ServerMsg::Changed(change(11, ChangeKind::Deleted)),
            ServerMsg::Changed(change(
                12,
                ChangeKind::Reacted {
                    emoji: "\u{1F389}".into(),
                },
            )),
            ServerMsg::Changed(change(
                13,
                ChangeKind::Unreacted {
                    emoji: "\u{1F389}".into(),
                },
            )),
            ServerMsg::Read {
                room: "general".into(),
                seq: 13,
            },
            ServerMsg::Presence {
                room: "general".into(),
                who: grace(),
                event: PresenceEvent::Joined,
                member_count: 1204,
            },
            ServerMsg::Presence {
                room: "general".into(),
                who: grace(),
                event: PresenceEvent::Left,
                member_count: 1203,
            },
            ServerMsg::Typing {
                room: "general".into(),
                who: grace(),
            },
            ServerMsg::Pong,
            ServerMsg::error(ErrorCode::NameTaken, "someone online is already called ada"),
            ServerMsg::Error {
                code: ErrorCode::NotInRoom,
                message: "join #ops first".into(),
                room: Some("ops".into()),
                client_id: Some("k3m9-2".into()),
                retry_after_ms: None,
            },
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                room: None,
                client_id: None,
                retry_after_ms: Some(250),
            },
        ]
    }

    #[test]
    fn every_client_message_round_trips() {
        for msg in client_examples() {
            let json = msg.to_json();
            assert_eq!(ClientMsg::decode(&json), Ok(msg.clone()), "{json}");
        }
    }

    #[test]
    fn every_server_message_round_trips() {
        for msg in server_examples() {
            let json = msg.to_json();
            let back: ServerMsg = serde_json::from_str(&json).expect("decodes");
            assert_eq!(back, msg, "{json}");
        }
    }

    #[test]
    fn client_type_list_matches_the_enum() {
        let mut seen: Vec<String> = client_examples()
            .iter()
            .map(|m| {
                let v: serde_json::Value = serde_json::from_str(&m.to_json()).expect("json");
                v["type"].as_str().expect("type").to_owned()
            })
            .collect();
        seen.dedup(); // two join examples
        assert_eq!(seen, CLIENT_TYPES);
    }

    fn change(seq: u64, by: &str, change: ChangeKind) -> Change {
        Change {
            room: "general".into(),
            seq,
            target: 3,
            by: by.into(),
            ts: 100 + i64::try_from(seq).unwrap_or_default(),
            change,
        }
    }

    #[test]
    fn a_change_applies_once_and_only_to_a_copy_that_lacks_it() {
        let mut msg = ChatMessage {
            seq: 3,
            body: "hi".into(),
            ..ChatMessage::default()
        };
        let thumbs = || ChangeKind::Reacted {
            emoji: "\u{1F44D}".into(),
        };
        assert!(msg.apply(&change(4, "bob", thumbs())));
        assert!(!msg.apply(&change(4, "bob", thumbs())), "seen already");
        assert!(msg.apply(&change(5, "cy", thumbs())));
        assert!(
            msg.apply(&change(6, "bob", thumbs())),
            "a second of bob's is one"
        );
        assert_eq!(msg.reactions[0].users, ["bob", "cy"]);
        let edit = change(
            7,
            "ada",
            ChangeKind::Edited {
                body: "hello".into(),
            },
        );
        assert!(msg.apply(&edit));
        assert_eq!(
            (msg.body.as_str(), msg.edited, msg.rev),
            ("hello", Some(107), 7)
        );
        // A copy read after seq 9 already shows 8 and 9.
        let mut later = ChatMessage {
            rev: 9,
            ..msg.clone()
        };
        assert!(!later.apply(&change(8, "cy", thumbs())));
        let unreact = |seq, by: &str| {
            change(
                seq,
                by,
                ChangeKind::Unreacted {
                    emoji: "\u{1F44D}".into(),
                },
            )
        };
        assert!(msg.apply(&unreact(8, "bob")));
        assert!(msg.apply(&unreact(9, "cy")));
        assert!(msg.reactions.is_empty(), "an emoji nobody uses goes");
        assert!(msg.apply(&change(10, "ada", ChangeKind::Deleted)));
        assert!(msg.apply(&change(11, "ada", ChangeKind::Edited { body: "x".into() })));
        assert!(msg.deleted && msg.body.is_empty(), "a tombstone stays one");
        let other = Change {
            target: 4,
            ..change(12, "ada", thumbs())
        };
        assert!(!msg.apply(&other), "about another message");
    }

    #[test]
    fn wire_format_is_internally_tagged_snake_case() {
        let json = ClientMsg::CreateRoom {
            room: "ops".into(),
            private: false,
        }
        .to_json();
        assert_eq!(json, r#"{"type":"create_room","room":"ops"}"#);
        let json = ServerMsg::Message(ChatMessage {
            id: 1,
            room: "general".into(),
            seq: 1,
            from: "ada".into(),
            name: "Ada".into(),
            body: "hi".into(),
            ts: 5,
            ..ChatMessage::default()
        })
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"message","id":1,"room":"general","seq":1,"from":"ada","name":"Ada","body":"hi","ts":5}"#
        );
        let json = ServerMsg::error(ErrorCode::BadJson, "x").to_json();
        assert_eq!(json, r#"{"type":"error","code":"bad_json","message":"x"}"#);
    }

    #[test]
    fn error_code_strings_match_serde() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(&code).expect("encodes"),
                format!("\"{}\"", code.as_str())
            );
        }
    }

    #[test]
    fn decode_errors_are_classified() {
        let code = |s: &str| ClientMsg::decode(s).expect_err(s).code;
        assert_eq!(code("{not json"), ErrorCode::BadJson);
        assert_eq!(code(""), ErrorCode::BadJson);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"kind":"hello"}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"[1,2]"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"send","room":"general"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(code(r#"{"type":"join","room":5}"#), ErrorCode::BadMessage);
    }
}

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
    Body, ClientId, DisplayName, Password, RoomName, Username, ValidationError, has_invisible_chars,
};

/// Version of the protocol described by this crate. A client announces the version it
/// speaks in [`ClientMsg::Hello`]; the server refuses any other with
/// [`ErrorCode::UnsupportedProtocol`].
pub const PROTOCOL_VERSION: u32 = 5;

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
    Send {
        room: String,
        body: String,
        client_id: String,
    },
    /// Ask for older messages of a joined room: those with `seq < before`, newest
    /// [`limits::HISTORY_PAGE`] (or `limit`, if smaller). Answered by
    /// [`ServerMsg::History`].
    FetchHistory {
        room: String,
        before: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
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
        history: Vec<ChatMessage>,
    },
    /// One page of a replay (see [`ClientMsg::Join`]); more follow after the client
    /// joins again from the last `seq` of this page.
    Replay {
        room: String,
        messages: Vec<ChatMessage>,
    },
    /// Older messages, answering [`ClientMsg::FetchHistory`]. `more` tells whether
    /// even older ones exist.
    History {
        room: String,
        messages: Vec<ChatMessage>,
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
    /// Someone came online in or went offline from a room the client is in (their
    /// first session joined it, or their last one left).
    Presence {
        room: String,
        who: Person,
        event: PresenceEvent,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub body: String,
    /// Server time when the message was accepted, in milliseconds since the Unix epoch.
    pub ts: i64,
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
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 19] = [
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
    "fetch_history",
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
            },
            ClientMsg::FetchHistory {
                room: "general".into(),
                before: 120,
                limit: Some(50),
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
            },
            RoomInfo {
                name: "_d0123456789abcdef".into(),
                title: "Grace Hopper".into(),
                kind: RoomKind::Direct,
                owner: None,
                online: 1,
                peer: Some(grace()),
                member: true,
            },
        ];
        vec![
            ServerMsg::Welcome {
                protocol: PROTOCOL_VERSION,
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
                history: vec![msg.clone()],
            },
            ServerMsg::Replay {
                room: "general".into(),
                messages: vec![msg.clone()],
            },
            ServerMsg::History {
                room: "general".into(),
                messages: vec![msg.clone()],
                more: true,
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
            ServerMsg::Presence {
                room: "general".into(),
                who: grace(),
                event: PresenceEvent::Joined,
            },
            ServerMsg::Presence {
                room: "general".into(),
                who: grace(),
                event: PresenceEvent::Left,
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

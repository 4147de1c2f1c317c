//! What the nodes of a cluster tell each other through Redis: JSON envelopes naming the
//! node that published them (a node ignores its own), on a channel per room for the
//! room's traffic and one control channel for the rest.
//!
//! A log entry carries the frame its members receive (`message` or `changed`) as raw
//! JSON: the receiving node puts it on its sockets as it is, without decoding it.

use confab_shared::Person;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::hub::Sessions;

/// Names a running node (random at start): how a node recognises its own publications.
pub type NodeId = u64;

/// The channel of a room's traffic.
pub fn room_channel(room: &str) -> String {
    format!("{ROOM_PREFIX}{room}")
}

/// Prefix of the room channels, to subscribe to them all with one pattern.
pub const ROOM_PREFIX: &str = "confab:room:";
/// The channel of everything else.
pub const CONTROL: &str = "confab:control";

/// The sorted set of who is online in a room on which node, scored by when the entry
/// expires unless its node renews it.
pub fn presence_key(room: &str) -> String {
    format!("{PRESENCE_PREFIX}{room}")
}

const PRESENCE_PREFIX: &str = "confab:presence:";

/// The set of rooms that have a presence set, for the sweep.
pub const PRESENCE_ROOMS: &str = "confab:presence-rooms";

/// A presence set's member: the node, then the person as JSON.
pub fn presence_member(node: NodeId, who: &Person) -> String {
    format!("{node}:{}", serde_json::to_string(who).unwrap_or_default())
}

/// The node and person of a presence set's member.
pub fn parse_presence_member(member: &str) -> Option<(NodeId, Person)> {
    let (node, who) = member.split_once(':')?;
    Some((node.parse().ok()?, serde_json::from_str(who).ok()?))
}

/// What a node publishes.
#[derive(Debug, Clone)]
pub enum Published {
    /// Entry `seq` of `room`'s log, committed: the frame its members receive.
    Log {
        room: String,
        seq: u64,
        frame: Utf8Bytes,
    },
    Typing {
        room: String,
        who: Person,
    },
    /// `who` came online in `room` on node `node` (their first connection there on that
    /// node), or went offline there (their last).
    Presence {
        room: String,
        who: Person,
        node: NodeId,
        online: bool,
    },
    /// The room was created, renamed, given a new owner, deleted, or gained or lost a
    /// member: read it again.
    RoomChanged {
        room: String,
    },
    /// A person read a room up to `seq` (their other devices follow).
    Read {
        user: String,
        room: String,
        seq: u64,
    },
    Mute {
        user: String,
        room: String,
        muted: bool,
    },
    /// Sign-in sessions ended: their sockets close on every node.
    SignedOut {
        username: String,
        sessions: Sessions,
    },
    /// An account was created.
    UserAdded {
        username: String,
        display_name: String,
    },
}

impl Published {
    /// The channel it goes on.
    pub fn channel(&self) -> String {
        match self {
            Published::Log { room, .. }
            | Published::Typing { room, .. }
            | Published::Presence { room, .. } => room_channel(room),
            _ => CONTROL.to_owned(),
        }
    }

    /// The envelope's JSON.
    pub fn encode(&self, node: NodeId) -> String {
        let event = match self {
            Published::Log { room, seq, frame } => Event::Log {
                room: room.clone(),
                seq: *seq,
                // A frame is JSON made by the server; a frame that somehow were not would
                // still travel, as a string, and be refused on arrival.
                frame: RawValue::from_string(frame.as_str().to_owned())
                    .unwrap_or_else(|_| empty_object()),
            },
            Published::Typing { room, who } => Event::Typing {
                room: room.clone(),
                who: who.clone(),
            },
            Published::Presence {
                room, who, online, ..
            } => Event::Presence {
                room: room.clone(),
                who: who.clone(),
                online: *online,
            },
            Published::RoomChanged { room } => Event::RoomChanged { room: room.clone() },
            Published::Read { user, room, seq } => Event::Read {
                user: user.clone(),
                room: room.clone(),
                seq: *seq,
            },
            Published::Mute { user, room, muted } => Event::Mute {
                user: user.clone(),
                room: room.clone(),
                muted: *muted,
            },
            Published::SignedOut { username, sessions } => Event::SignedOut {
                username: username.clone(),
                sessions: WireSessions::from(*sessions),
            },
            Published::UserAdded {
                username,
                display_name,
            } => Event::UserAdded {
                username: username.clone(),
                display_name: display_name.clone(),
            },
        };
        serde_json::to_string(&Envelope { node, event }).unwrap_or_default()
    }
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("valid JSON"))
}

/// What a node hears, from the other nodes or about its link to them.
#[derive(Debug, Clone)]
pub enum Inbound {
    /// Another node published this.
    Published(Published),
    /// Subscribed to Redis (again): what was published while the node was not is
    /// missed, and the hub looks at PostgreSQL now.
    Up,
    /// The link to Redis is lost: until [`Inbound::Up`], the hub looks at PostgreSQL
    /// more often.
    Down,
    /// Who is online on the other nodes, room by room, as Redis holds it now (without
    /// those whose node stopped renewing them): what the hub reconciles its view with,
    /// so a lost presence event or a dead node corrects itself.
    Presence(Vec<(String, NodeId, Person)>),
}

impl Inbound {
    /// Decodes another node's envelope; `None` for this node's own, and for anything
    /// that is not an envelope (logged by the caller).
    pub fn decode(payload: &[u8], own: NodeId) -> Result<Option<Published>, serde_json::Error> {
        let envelope: Envelope = serde_json::from_slice(payload)?;
        if envelope.node == own {
            return Ok(None);
        }
        Ok(Some(match envelope.event {
            Event::Log { room, seq, frame } => Published::Log {
                room,
                seq,
                frame: Utf8Bytes::from(frame.get().to_owned()),
            },
            Event::Typing { room, who } => Published::Typing { room, who },
            Event::Presence { room, who, online } => Published::Presence {
                room,
                who,
                node: envelope.node,
                online,
            },
            Event::RoomChanged { room } => Published::RoomChanged { room },
            Event::Read { user, room, seq } => Published::Read { user, room, seq },
            Event::Mute { user, room, muted } => Published::Mute { user, room, muted },
            Event::SignedOut { username, sessions } => Published::SignedOut {
                username,
                sessions: sessions.into_sessions()?,
            },
            Event::UserAdded {
                username,
                display_name,
            } => Published::UserAdded {
                username,
                display_name,
            },
        }))
    }
}

// Externally tagged, without `flatten`: an internally tagged or flattened enum is
// buffered by serde before it is decoded, and a raw frame cannot be read from a buffer.
#[derive(Serialize, Deserialize)]
struct Envelope {
    node: NodeId,
    event: Event,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Event {
    Log {
        room: String,
        seq: u64,
        frame: Box<RawValue>,
    },
    Typing {
        room: String,
        who: Person,
    },
    Presence {
        room: String,
        who: Person,
        online: bool,
    },
    RoomChanged {
        room: String,
    },
    Read {
        user: String,
        room: String,
        seq: u64,
    },
    Mute {
        user: String,
        room: String,
        muted: bool,
    },
    SignedOut {
        username: String,
        sessions: WireSessions,
    },
    UserAdded {
        username: String,
        display_name: String,
    },
}

/// [`Sessions`] with its keys in hex.
#[derive(Serialize, Deserialize)]
#[serde(tag = "which", content = "key", rename_all = "snake_case")]
enum WireSessions {
    One(String),
    All,
    AllBut(String),
}

impl From<Sessions> for WireSessions {
    fn from(sessions: Sessions) -> Self {
        let hex = |key: [u8; 32]| data_encoding::HEXLOWER.encode(&key);
        match sessions {
            Sessions::One(key) => WireSessions::One(hex(key)),
            Sessions::All => WireSessions::All,
            Sessions::AllBut(key) => WireSessions::AllBut(hex(key)),
        }
    }
}

impl WireSessions {
    fn into_sessions(self) -> Result<Sessions, serde_json::Error> {
        let key = |hex: String| -> Result<[u8; 32], serde_json::Error> {
            data_encoding::HEXLOWER
                .decode(hex.as_bytes())
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| serde::de::Error::custom("a session key is 64 hex digits"))
        };
        Ok(match self {
            WireSessions::One(hex) => Sessions::One(key(hex)?),
            WireSessions::All => Sessions::All,
            WireSessions::AllBut(hex) => Sessions::AllBut(key(hex)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(published: Published) -> Published {
        let json = published.encode(7);
        Inbound::decode(json.as_bytes(), 8)
            .expect("decodes")
            .expect("another node's")
    }

    #[test]
    fn a_log_entry_carries_its_frame_as_json_not_as_a_string() {
        let frame = Utf8Bytes::from(r#"{"type":"message","seq":3}"#);
        let json = Published::Log {
            room: "general".into(),
            seq: 3,
            frame: frame.clone(),
        }
        .encode(7);
        assert_eq!(
            json,
            r#"{"node":7,"event":{"log":{"room":"general","seq":3,"frame":{"type":"message","seq":3}}}}"#
        );
        match round_trip(Published::Log {
            room: "general".into(),
            seq: 3,
            frame: frame.clone(),
        }) {
            Published::Log {
                room,
                seq,
                frame: f,
            } => {
                assert_eq!((room.as_str(), seq, f), ("general", 3, frame));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_node_ignores_its_own_envelopes() {
        let json = Published::RoomChanged { room: "a".into() }.encode(7);
        assert!(
            Inbound::decode(json.as_bytes(), 7)
                .expect("decodes")
                .is_none()
        );
    }

    #[test]
    fn sign_outs_keep_their_session_keys() {
        let key = [0xab; 32];
        for sessions in [Sessions::One(key), Sessions::All, Sessions::AllBut(key)] {
            match round_trip(Published::SignedOut {
                username: "ada".into(),
                sessions,
            }) {
                Published::SignedOut {
                    username,
                    sessions: s,
                } => {
                    assert_eq!((username.as_str(), s), ("ada", sessions));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn presence_names_the_node_that_published_it() {
        let who = Person {
            user: "~bo".into(),
            name: "Bo".into(),
            guest: true,
        };
        match round_trip(Published::Presence {
            room: "a".into(),
            who: who.clone(),
            node: 1,
            online: true,
        }) {
            Published::Presence {
                who: w,
                node,
                online,
                ..
            } => assert_eq!((w, node, online), (who.clone(), 7, true)),
            other => panic!("{other:?}"),
        }
        let member = presence_member(7, &who);
        assert_eq!(parse_presence_member(&member), Some((7, who)));
        assert_eq!(parse_presence_member("x:{}"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"not json"[..],
            br#"{"node":1,"event":{"log":{"room":"a","seq":1}}}"#,
            br#"{"node":1,"event":{"signed_out":{"username":"a","sessions":{"which":"one","key":"zz"}}}}"#,
        ] {
            assert!(Inbound::decode(bad, 2).is_err());
        }
    }
}

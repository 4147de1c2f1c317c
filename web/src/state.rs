//! The client's whole view state and the one reducer that changes it.
//!
//! Everything the UI shows is derived from [`State`]; every change arrives as an
//! [`Action`], from the socket service or from the user. The reducer is plain Rust with
//! no browser calls (time comes in with the actions), so it is unit-tested natively.

use std::{collections::BTreeMap, rc::Rc};

use confab_shared::{
    ChatMessage, DEFAULT_ROOM, ErrorCode, PresenceEvent, RoomInfo, ServerMsg, limits,
};
use serde::{Deserialize, Serialize};
use yew::Reducible;

/// State of the connection to the server, as shown to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// First attempt, nothing received yet.
    Connecting,
    /// Socket open.
    Open,
    /// Lost; the service retries after `retry_in_ms`.
    Reconnecting { retry_in_ms: u32 },
}

/// A message the user wrote that the server has not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub client_id: String,
    pub room: String,
    pub body: String,
    /// Why the server refused it; `None` while it is on its way.
    pub failed: Option<String>,
}

/// One room the user has joined.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoomView {
    /// Oldest first, unique by id.
    pub messages: Vec<ChatMessage>,
    /// Online members, sorted case-insensitively.
    pub members: Vec<String>,
    /// Who is typing, with when their indicator expires (ms since epoch).
    pub typing: Vec<(String, f64)>,
    /// Messages arrived while another room was on screen.
    pub unread: bool,
    /// Older messages exist on the server than the oldest one here.
    pub has_older: bool,
    /// A request for older messages is on its way.
    pub loading_older: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub conn: Conn,
    /// The display name the server confirmed; `None` shows the name prompt.
    pub me: Option<String>,
    /// A remembered name the client is signing in with, before the server confirms it.
    pub resuming: Option<String>,
    /// Messages written but not acknowledged yet, oldest first.
    pub pending: Vec<Pending>,
    /// Why the last name was refused, shown on the prompt.
    pub name_error: Option<String>,
    /// Every room on the server, as last listed.
    pub rooms: Vec<RoomInfo>,
    /// Rooms this user is in.
    pub joined: BTreeMap<String, RoomView>,
    /// The room on screen.
    pub current: String,
    /// The last problem worth telling the user about (an error from the server).
    pub notice: Option<String>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            conn: Conn::Connecting,
            me: None,
            resuming: None,
            pending: Vec::new(),
            name_error: None,
            rooms: Vec::new(),
            joined: BTreeMap::new(),
            current: DEFAULT_ROOM.to_owned(),
            notice: None,
        }
    }
}

/// Everything that can change the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Conn(Conn),
    /// A message from the server, received at `now` (ms since epoch).
    Server {
        msg: ServerMsg,
        now: f64,
    },
    /// Show another room (joined, or being joined).
    Switch(String),
    /// Drop typing indicators that expired before `now`.
    Tick {
        now: f64,
    },
    DismissNotice,
    /// The outbox changed (see [`crate::socket::Chat::send`]).
    Outbox(Vec<Pending>),
    /// Signing in again with a name remembered from an earlier visit.
    Resuming(String),
    /// Older messages of a room were asked for.
    LoadingOlder(String),
}

impl State {
    pub fn current_room(&self) -> Option<&RoomView> {
        self.joined.get(&self.current)
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::Conn(conn) => {
                self.conn = conn;
                if conn != Conn::Open {
                    // Presence and typing are stale once disconnected; the re-join brings
                    // fresh ones.
                    for room in self.joined.values_mut() {
                        room.members.clear();
                        room.typing.clear();
                    }
                }
            }
            Action::Server { msg, now } => self.on_server(msg, now),
            Action::Switch(room) => {
                if let Some(view) = self.joined.get_mut(&room) {
                    view.unread = false;
                }
                self.current = room;
            }
            Action::Tick { now } => {
                for room in self.joined.values_mut() {
                    room.typing.retain(|(_, until)| *until > now);
                }
            }
            Action::DismissNotice => self.notice = None,
            Action::Outbox(pending) => self.pending = pending,
            Action::Resuming(name) => self.resuming = Some(name),
            Action::LoadingOlder(room) => {
                if let Some(view) = self.joined.get_mut(&room) {
                    view.loading_older = true;
                }
            }
        }
    }

    fn on_server(&mut self, msg: ServerMsg, now: f64) {
        match msg {
            ServerMsg::Welcome { name, rooms, .. } => {
                self.me = Some(name);
                self.resuming = None;
                self.name_error = None;
                self.rooms = rooms;
            }
            ServerMsg::Rooms { rooms } => self.rooms = rooms,
            ServerMsg::Joined {
                room,
                online,
                history,
                ..
            } => {
                let view = self.joined.entry(room).or_default();
                view.members = online;
                for msg in history {
                    insert_message(&mut view.messages, msg);
                }
                view.has_older = view.messages.first().is_some_and(|m| m.seq > 1);
            }
            ServerMsg::Replay { room, messages } => {
                let view = self.joined.entry(room).or_default();
                for msg in messages {
                    insert_message(&mut view.messages, msg);
                }
            }
            ServerMsg::History {
                room,
                messages,
                more,
            } => {
                if let Some(view) = self.joined.get_mut(&room) {
                    for msg in messages {
                        insert_message(&mut view.messages, msg);
                    }
                    view.has_older = more;
                    view.loading_older = false;
                }
            }
            ServerMsg::Ack {
                room,
                client_id,
                id,
                seq,
                ts,
            } => {
                // Show the stored message right away; its broadcast, which follows,
                // is the same id and is dropped as a duplicate.
                // Removed here too, not only by the outbox update that follows, so the
                // message never shows twice in between.
                let Some(at) = self.pending.iter().position(|p| p.client_id == client_id) else {
                    return;
                };
                let pending = self.pending.remove(at);
                let msg = ChatMessage {
                    id,
                    room,
                    seq,
                    from: self.me.clone().unwrap_or_default(),
                    body: pending.body,
                    ts,
                };
                if let Some(view) = self.joined.get_mut(&msg.room) {
                    insert_message(&mut view.messages, msg);
                }
            }
            ServerMsg::Left { room } => {
                self.joined.remove(&room);
                if self.current == room {
                    self.current = DEFAULT_ROOM.to_owned();
                }
            }
            ServerMsg::Message(msg) => {
                let on_screen = msg.room == self.current;
                if let Some(view) = self.joined.get_mut(&msg.room) {
                    view.typing.retain(|(name, _)| *name != msg.from);
                    if !on_screen {
                        view.unread = true;
                    }
                    insert_message(&mut view.messages, msg);
                }
            }
            ServerMsg::Presence { room, name, event } => {
                if let Some(view) = self.joined.get_mut(&room) {
                    view.members.retain(|m| *m != name);
                    if event == PresenceEvent::Joined {
                        view.members.push(name);
                        view.members.sort_by_key(|n| n.to_lowercase());
                    } else {
                        view.typing.retain(|(n, _)| *n != name);
                    }
                }
            }
            ServerMsg::Typing { room, name } => {
                if let Some(view) = self.joined.get_mut(&room) {
                    let until = now + limits::TYPING_TTL_MS as f64;
                    match view.typing.iter_mut().find(|(n, _)| *n == name) {
                        Some(entry) => entry.1 = until,
                        None => view.typing.push((name, until)),
                    }
                }
            }
            ServerMsg::Error {
                code,
                message,
                room,
                ..
            } => match (code, room) {
                (ErrorCode::InvalidName | ErrorCode::NameTaken, _) if self.me.is_none() => {
                    self.resuming = None;
                    self.name_error = Some(message);
                }
                (ErrorCode::UnknownRoom, Some(room)) => {
                    // A room we were in vanished (the server restarted without it).
                    self.joined.remove(&room);
                    if self.current == room {
                        self.current = DEFAULT_ROOM.to_owned();
                    }
                    self.notice = Some(message);
                }
                _ => self.notice = Some(message),
            },
        }
    }

    /// The current room's messages still waiting for the server.
    pub fn pending_here(&self) -> impl Iterator<Item = &Pending> {
        self.pending.iter().filter(|p| p.room == self.current)
    }

    /// Names typing in the current room, for the indicator.
    pub fn typing_names(&self) -> Vec<&str> {
        self.current_room()
            .map(|r| r.typing.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_default()
    }
}

/// Inserts in id order, ignoring a message already present (history re-sent on re-join).
fn insert_message(messages: &mut Vec<ChatMessage>, msg: ChatMessage) {
    match messages.last() {
        Some(last) if last.id < msg.id => messages.push(msg),
        None => messages.push(msg),
        Some(_) => {
            if let Err(pos) = messages.binary_search_by_key(&msg.id, |m| m.id) {
                messages.insert(pos, msg);
            }
        }
    }
}

impl Reducible for State {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        next.apply(action);
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: u64, room: &str, from: &str) -> ChatMessage {
        ChatMessage {
            id,
            seq: id,
            room: room.into(),
            from: from.into(),
            body: format!("m{id}"),
            ts: 0,
        }
    }

    fn server(state: &mut State, msg: ServerMsg) {
        state.apply(Action::Server { msg, now: 1000.0 });
    }

    fn joined(room: &str, history: Vec<ChatMessage>) -> ServerMsg {
        ServerMsg::Joined {
            room: room.into(),
            members: vec!["ada".into()],
            online: vec!["ada".into()],
            history,
        }
    }

    #[test]
    fn welcome_sets_name_and_clears_name_error() {
        let mut s = State::default();
        server(&mut s, ServerMsg::error(ErrorCode::NameTaken, "taken"));
        assert_eq!(s.name_error.as_deref(), Some("taken"));
        assert_eq!(s.me, None);
        server(
            &mut s,
            ServerMsg::Welcome {
                protocol: 1,
                name: "ada".into(),
                rooms: vec![],
            },
        );
        assert_eq!(s.me.as_deref(), Some("ada"));
        assert_eq!(s.name_error, None);
    }

    #[test]
    fn history_and_live_messages_merge_without_duplicates() {
        let mut s = State::default();
        server(
            &mut s,
            joined(
                "general",
                vec![msg(1, "general", "a"), msg(2, "general", "a")],
            ),
        );
        server(&mut s, ServerMsg::Message(msg(3, "general", "b")));
        // After a reconnect the history overlaps what we have.
        server(
            &mut s,
            joined(
                "general",
                vec![
                    msg(2, "general", "a"),
                    msg(3, "general", "b"),
                    msg(4, "general", "b"),
                ],
            ),
        );
        let ids: Vec<u64> = s.joined["general"].messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
    }

    #[test]
    fn messages_in_other_rooms_mark_unread_until_switched() {
        let mut s = State::default();
        server(&mut s, joined("general", vec![]));
        server(&mut s, joined("ops", vec![]));
        server(&mut s, ServerMsg::Message(msg(1, "ops", "b")));
        server(&mut s, ServerMsg::Message(msg(2, "general", "b")));
        assert!(s.joined["ops"].unread);
        assert!(!s.joined["general"].unread);
        s.apply(Action::Switch("ops".into()));
        assert_eq!(s.current, "ops");
        assert!(!s.joined["ops"].unread);
        // A room being joined is shown at once; its messages arrive with the join.
        s.apply(Action::Switch("new".into()));
        assert_eq!(s.current, "new");
        assert!(s.current_room().is_none());
    }

    #[test]
    fn presence_updates_members() {
        let mut s = State::default();
        server(&mut s, joined("general", vec![]));
        let presence = |name: &str, event| ServerMsg::Presence {
            room: "general".into(),
            name: name.into(),
            event,
        };
        server(&mut s, presence("Bob", PresenceEvent::Joined));
        server(&mut s, presence("carol", PresenceEvent::Joined));
        assert_eq!(s.joined["general"].members, ["ada", "Bob", "carol"]);
        server(&mut s, presence("Bob", PresenceEvent::Left));
        assert_eq!(s.joined["general"].members, ["ada", "carol"]);
    }

    #[test]
    fn typing_expires_and_ends_with_a_message() {
        let mut s = State::default();
        server(&mut s, joined("general", vec![]));
        let typing = |name: &str| ServerMsg::Typing {
            room: "general".into(),
            name: name.into(),
        };
        server(&mut s, typing("bob"));
        server(&mut s, typing("carol"));
        assert_eq!(s.typing_names(), ["bob", "carol"]);
        server(&mut s, ServerMsg::Message(msg(1, "general", "bob")));
        assert_eq!(s.typing_names(), ["carol"]);
        s.apply(Action::Tick {
            now: 1000.0 + limits::TYPING_TTL_MS as f64 - 1.0,
        });
        assert_eq!(s.typing_names(), ["carol"]);
        s.apply(Action::Tick {
            now: 1000.0 + limits::TYPING_TTL_MS as f64 + 1.0,
        });
        assert!(s.typing_names().is_empty());
    }

    #[test]
    fn leaving_the_current_room_goes_back_to_general() {
        let mut s = State::default();
        server(&mut s, joined("general", vec![]));
        server(&mut s, joined("ops", vec![]));
        s.apply(Action::Switch("ops".into()));
        server(&mut s, ServerMsg::Left { room: "ops".into() });
        assert_eq!(s.current, "general");
        assert!(!s.joined.contains_key("ops"));
    }

    #[test]
    fn a_vanished_room_is_dropped_with_a_notice() {
        let mut s = State::default();
        server(&mut s, joined("ops", vec![]));
        s.apply(Action::Switch("ops".into()));
        server(
            &mut s,
            ServerMsg::Error {
                code: ErrorCode::UnknownRoom,
                message: "there is no room #ops".into(),
                room: Some("ops".into()),
                client_id: None,
                retry_after_ms: None,
            },
        );
        assert!(!s.joined.contains_key("ops"));
        assert_eq!(s.current, "general");
        assert!(s.notice.is_some());
    }

    #[test]
    fn an_ack_turns_the_pending_message_into_a_delivered_one_once() {
        let mut s = State::default();
        server(
            &mut s,
            ServerMsg::Welcome {
                protocol: 2,
                name: "ada".into(),
                rooms: vec![],
            },
        );
        server(&mut s, joined("general", vec![]));
        s.apply(Action::Outbox(vec![Pending {
            client_id: "c1".into(),
            room: "general".into(),
            body: "hi".into(),
            failed: None,
        }]));
        assert_eq!(s.pending_here().count(), 1);
        server(
            &mut s,
            ServerMsg::Ack {
                room: "general".into(),
                client_id: "c1".into(),
                id: 9,
                seq: 4,
                ts: 5,
            },
        );
        assert_eq!(s.pending_here().count(), 0, "never shown twice");
        assert_eq!(s.joined["general"].messages.len(), 1);
        s.apply(Action::Outbox(vec![]));
        let mut copy = msg(9, "general", "ada");
        copy.seq = 4;
        copy.body = "hi".into();
        copy.ts = 5;
        server(&mut s, ServerMsg::Message(copy));
        let view = &s.joined["general"];
        assert_eq!(view.messages.len(), 1);
        assert_eq!(
            (
                view.messages[0].body.as_str(),
                view.messages[0].from.as_str()
            ),
            ("hi", "ada")
        );
        assert_eq!(s.pending_here().count(), 0);
    }

    #[test]
    fn older_pages_are_merged_and_tell_whether_more_exist() {
        let mut s = State::default();
        server(&mut s, joined("general", vec![msg(50, "general", "a")]));
        assert!(s.joined["general"].has_older);
        s.apply(Action::LoadingOlder("general".into()));
        assert!(s.joined["general"].loading_older);
        server(
            &mut s,
            ServerMsg::History {
                room: "general".into(),
                messages: vec![msg(1, "general", "a"), msg(2, "general", "b")],
                more: false,
            },
        );
        let view = &s.joined["general"];
        assert_eq!(
            view.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
            [1, 2, 50]
        );
        assert!(!view.has_older);
        assert!(!view.loading_older);
    }

    #[test]
    fn disconnecting_clears_presence_but_keeps_messages() {
        let mut s = State::default();
        server(&mut s, joined("general", vec![msg(1, "general", "a")]));
        s.apply(Action::Conn(Conn::Reconnecting { retry_in_ms: 500 }));
        assert!(s.joined["general"].members.is_empty());
        assert_eq!(s.joined["general"].messages.len(), 1);
    }
}

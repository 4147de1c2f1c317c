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
        let noop = Write::RenameRoom {
            room: "no-such-room".into(),
            title: "noop".into(),
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

    /// A guest's connection (it names itself in hello).
    fn connect(&mut self, id: SessionId, capacity: usize) -> Client {
        self.connect_with(id, capacity, Identity::Guest)
    }

    fn connect_with(&mut self, id: SessionId, capacity: usize, identity: Identity) -> Client {
        let (outbox, rx) = Outbox::new(capacity);
        self.hub.connect(id, outbox, identity);
        Client { id, rx }
    }

    /// A connection of the account `username` (created if new), displayed as
    /// `username` capitalised, after hello.
    fn signed_in(&mut self, id: SessionId, username: &str) -> Client {
        let display = capitalised(username);
        self.hub.user_added(username.to_owned(), display.clone());
        let mut c = self.connect_with(id, 8192, user(username, &display, id));
        self.hub.handle(id, hello(username));
        c.drain();
        c
    }

    /// A signed-in connection (see [`Fixture::signed_in`]) that joined `general`;
    /// returns the client with its queue empty.
    fn member(&mut self, id: SessionId, name: &str) -> Client {
        // Roomy enough for the tests that send a few thousand messages unread.
        let mut c = self.signed_in(id, name);
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

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// An account identity whose sign-in is told apart by `session`.
fn user(username: &str, display_name: &str, session: SessionId) -> Identity {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&session.to_le_bytes());
    Identity::User {
        username: username.to_owned(),
        display_name: display_name.to_owned(),
        admin: false,
        session: key,
    }
}

fn handles(people: &[Person]) -> Vec<&str> {
    people.iter().map(|p| p.user.as_str()).collect()
}

fn create(name: &str) -> Command {
    Command::CreateRoom {
        room: room(name),
        private: false,
    }
}

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
        name: Some(DisplayName::parse(name).expect("name")),
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
        [ServerMsg::Welcome { you, rooms, .. }] => {
            assert_eq!(
                you,
                &Person {
                    user: "~ada".into(),
                    name: "Ada".into(),
                    guest: true
                }
            );
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
fn guest_names_are_unique_case_insensitively_and_freed_on_disconnect() {
    let mut f = Fixture::new();
    let _ada = f.connect(1, 8);
    f.hub.handle(1, hello("Ada"));
    // An account called Ada is someone else: handles differ, guests are marked.
    let _account = f.member(3, "ada");
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
    f.hub.handle(1, create("ops"));
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
    f.hub.handle(1, create("ops"));
    for c in [&mut ada, &mut bob] {
        match c.drain().as_slice() {
            [ServerMsg::Rooms { rooms, .. }] => {
                let names: Vec<_> = rooms.iter().map(|r| r.name.as_str()).collect();
                assert_eq!(names, ["general", "ops"]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    f.hub.handle(2, create("ops"));
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
    f.hub.handle(1, create("one"));
    f.hub.handle(1, create("two"));
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
        f.hub.handle(1, create(r));
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
    assert!(
        ada.drain()
            .iter()
            .any(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "two"))
    );
}

#[test]
fn presence_on_join_leave_and_disconnect() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.signed_in(2, "bob");
    f.hub.handle(2, join("general", None));
    let joined = bob.drain();
    assert!(matches!(
        joined.iter().find(|m| matches!(m, ServerMsg::Joined { .. })),
        Some(ServerMsg::Joined { online, members, .. })
            if online == &["ada", "bob"] && handles(members) == ["ada", "bob"]
    ));
    assert_eq!(
        ada.drain(),
        [ServerMsg::Presence {
            room: "general".into(),
            who: Person {
                user: "bob".into(),
                name: "Bob".into(),
                guest: false
            },
            event: PresenceEvent::Joined
        }]
    );
    f.hub.handle(2, Command::Leave(room("general")));
    assert!(matches!(
        bob.drain().as_slice(),
        [ServerMsg::Left { room }, ServerMsg::Rooms { .. }] if room == "general"
    ));
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
        [ServerMsg::Presence { who, event: PresenceEvent::Left, .. }] if who.user == "bob"
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
    f.hub.handle(1, create("ops"));
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
            ServerMsg::Rooms { .. },
        ] => {
            assert_eq!(handles(members), ["ada", "bob"]);
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
            who: Person {
                user: "ada".into(),
                name: "Ada".into(),
                guest: false
            }
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
        f.hub.handle(1, create(r));
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
    // Its connection cannot write: the peer stopped reading.
    slow.rx.set_socket_full(true);
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
        ServerMsg::Presence { who, event: PresenceEvent::Left, .. } if who.name == "slow"
    )));
    // The slow client got what fitted, and nothing after its queue filled.
    assert_eq!(slow.drain().len(), 4);
    drop(ada);
}

#[test]
fn a_burst_does_not_disconnect_a_client_whose_socket_takes_everything() {
    let mut f = Fixture::new();
    let ada = f.member(1, "ada");
    let mut quick = f.connect(3, 4);
    f.hub.handle(3, hello("quick"));
    f.hub.handle(3, join("general", None));
    quick.drain();
    // Ten messages reach the hub before the connection runs (as when commits held back
    // by a slow disk all come in together): more than its queue holds.
    for i in 0..10 {
        f.hub
            .handle(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    assert_eq!(quick.close_code(), None);
    assert_eq!(bodies(&quick.drain()).len(), 10);
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

impl Fixture {
    /// Has `owner` create the private room titled `title`; returns its id.
    fn create_private(&mut self, owner: &mut Client, title: &str) -> String {
        self.hub.handle(
            owner.id,
            Command::CreateRoom {
                room: room(title),
                private: true,
            },
        );
        created_room(owner)
    }
}

/// The id of the private room `c`'s own create_room made, from its `rooms` reply.
fn created_room(c: &mut Client) -> String {
    c.drain()
        .into_iter()
        .find_map(|m| match m {
            ServerMsg::Rooms {
                created: Some(id), ..
            } => Some(id),
            _ => None,
        })
        .expect("a rooms reply naming the created room")
}

fn room_names(msgs: &[ServerMsg]) -> Option<Vec<String>> {
    msgs.iter().rev().find_map(|m| match m {
        ServerMsg::Rooms { rooms, .. } => Some(rooms.iter().map(|r| r.name.clone()).collect()),
        _ => None,
    })
}

/// Every request about `id` that a non-member could make, and the error frames they get.
fn probe(f: &mut Fixture, c: &mut Client, id: &str) -> Vec<ServerMsg> {
    let r = || room(id);
    let requests = [
        join(id, None),
        join(id, Some(0)),
        send(id, "let me in", "p1"),
        Command::FetchHistory {
            room: r(),
            before: 100,
            limit: 10,
        },
        Command::Typing(r()),
        Command::Leave(r()),
        Command::Invite {
            room: r(),
            user: Username::parse("bob").expect("username"),
        },
        Command::Remove {
            room: r(),
            user: Username::parse("ada").expect("username"),
        },
        Command::RenameRoom {
            room: r(),
            title: room("mine"),
        },
        Command::DeleteRoom(r()),
    ];
    for request in requests {
        f.hub.handle(c.id, request);
    }
    c.drain()
}

#[test]
fn a_private_room_is_indistinguishable_from_none_to_non_members() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let plans = f.create_private(&mut ada, "plans");
    assert!(plans.starts_with("_p"), "{plans}");
    assert!(
        bob.drain().is_empty(),
        "nobody else hears of a private room"
    );
    f.hub.handle(1, join(&plans, None));
    f.say(&ada, &plans, "secret", "c1");
    ada.drain();

    f.hub.handle(2, Command::ListRooms);
    assert_eq!(room_names(&bob.drain()), Some(vec!["general".to_owned()]));
    let about_plans = probe(&mut f, &mut bob, &plans);
    let nowhere = "_pnosuchroomatall00";
    let about_nothing = probe(&mut f, &mut bob, nowhere);
    assert_eq!(about_plans.len(), 10);
    for (real, none) in about_plans.iter().zip(&about_nothing) {
        let text = |m: &ServerMsg| m.to_json().replace(&plans, "ROOM").replace(nowhere, "ROOM");
        assert_eq!(text(real), text(none));
        assert!(matches!(
            real,
            ServerMsg::Error {
                code: ErrorCode::UnknownRoom,
                ..
            }
        ));
    }
    assert!(ada.drain().is_empty(), "probing tells the members nothing");

    // An invitation makes it visible, and then it is a room like any other.
    f.hub.handle(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::Members { members, .. }] if handles(members) == ["ada", "bob"]
    ));
    let lists = bob.drain();
    assert_eq!(
        room_names(&lists),
        Some(vec![plans.clone(), "general".to_owned()])
    );
    f.hub.handle(2, join(&plans, None));
    assert!(matches!(
        bob.drain().as_slice(),
        [ServerMsg::Joined { history, .. }] if bodies_of(history) == ["secret"]
    ));
}

fn bodies_of(msgs: &[ChatMessage]) -> Vec<&str> {
    msgs.iter().map(|m| m.body.as_str()).collect()
}

#[test]
fn guests_get_public_rooms_only() {
    let mut f = Fixture::new();
    let _ada = f.member(1, "ada");
    let mut guest = f.connect(2, 64);
    f.hub.handle(2, hello("Visitor"));
    guest.drain();
    f.hub.handle(
        2,
        Command::CreateRoom {
            room: room("hideout"),
            private: true,
        },
    );
    assert_eq!(error_code(&guest.drain()), Some(ErrorCode::Forbidden));
    f.hub.handle(
        2,
        Command::OpenDirect(Username::parse("ada").expect("username")),
    );
    assert_eq!(error_code(&guest.drain()), Some(ErrorCode::Forbidden));
    f.hub.handle(2, join("general", None));
    assert!(matches!(
        guest.drain().as_slice(),
        [ServerMsg::Joined { .. }]
    ));
}

#[test]
fn a_direct_conversation_is_between_two_people_only() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let mut carol = f.member(3, "carol");
    ada.drain();
    bob.drain();
    f.hub.handle(
        1,
        Command::OpenDirect(Username::parse("bob").expect("username")),
    );
    let opened = ada.drain();
    let dm = match opened.as_slice() {
        [
            ServerMsg::Rooms { rooms, .. },
            ServerMsg::Joined { room, .. },
        ] => {
            let info = rooms.iter().find(|r| &r.name == room).expect("listed");
            assert_eq!(info.kind, RoomKind::Direct);
            assert_eq!(info.title, "Bob");
            assert_eq!(info.peer.as_ref().map(|p| p.user.as_str()), Some("bob"));
            room.clone()
        }
        other => panic!("unexpected {other:?}"),
    };
    let bob_sees = bob.drain();
    assert!(matches!(
        bob_sees.as_slice(),
        [ServerMsg::Rooms { rooms, .. }]
            if rooms.iter().any(|r| r.name == dm && r.peer.as_ref().is_some_and(|p| p.user == "ada"))
    ));
    assert!(carol.drain().is_empty());
    f.say(&ada, &dm, "just us", "c1");
    f.hub.handle(2, join(&dm, None));
    assert!(matches!(
        bob.drain().as_slice(),
        [ServerMsg::Joined { history, .. }] if bodies_of(history) == ["just us"]
    ));
    // Opening it again from either side finds the same conversation.
    f.hub.handle(
        2,
        Command::OpenDirect(Username::parse("ada").expect("username")),
    );
    assert!(matches!(bob.drain().last(), Some(ServerMsg::Joined { room, .. }) if *room == dm));
    for msg in probe(&mut f, &mut carol, &dm) {
        assert!(
            matches!(
                msg,
                ServerMsg::Error {
                    code: ErrorCode::UnknownRoom,
                    ..
                }
            ),
            "{msg:?}"
        );
    }
    f.hub.handle(
        3,
        Command::OpenDirect(Username::parse("nobody").expect("username")),
    );
    assert_eq!(error_code(&carol.drain()), Some(ErrorCode::UnknownUser));
}

#[test]
fn only_the_owner_renames_removes_and_deletes() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let plans = f.create_private(&mut ada, "plans");
    f.hub.handle(1, join(&plans, None));
    f.hub.handle(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.hub.handle(2, join(&plans, None));
    ada.drain();
    bob.drain();
    for request in [
        Command::RenameRoom {
            room: room(&plans),
            title: room("mine"),
        },
        Command::Remove {
            room: room(&plans),
            user: Username::parse("ada").expect("username"),
        },
        Command::DeleteRoom(room(&plans)),
    ] {
        f.hub.handle(2, request);
        assert_eq!(error_code(&bob.drain()), Some(ErrorCode::Forbidden));
    }
    f.hub.handle(
        1,
        Command::RenameRoom {
            room: room(&plans),
            title: room("schemes"),
        },
    );
    for c in [&mut ada, &mut bob] {
        let renamed = c.drain();
        assert!(matches!(
            renamed.as_slice(),
            [ServerMsg::Rooms { rooms, .. }]
                if rooms.iter().any(|r| r.name == plans && r.title == "schemes")
        ));
    }
    f.hub.handle(
        1,
        Command::Remove {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    let removed = bob.drain();
    assert!(removed.contains(&ServerMsg::Left {
        room: plans.clone()
    }));
    assert_eq!(room_names(&removed), Some(vec!["general".to_owned()]));
    assert!(matches!(
        probe(&mut f, &mut bob, &plans).first(),
        Some(ServerMsg::Error {
            code: ErrorCode::UnknownRoom,
            ..
        })
    ));
    f.hub.handle(1, Command::DeleteRoom(room(&plans)));
    let deleted = ada.drain();
    assert!(deleted.contains(&ServerMsg::Left {
        room: plans.clone()
    }));
    assert_eq!(room_names(&deleted), Some(vec!["general".to_owned()]));
    f.hub.handle(1, Command::DeleteRoom(room("general")));
    assert_eq!(error_code(&ada.drain()), Some(ErrorCode::Forbidden));
    f.flush();
    let f = f.restart();
    assert!(!f.hub.rooms.contains_key(&plans), "deleted for good");
}

#[test]
fn two_tabs_of_one_person_arrive_and_leave_once() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob_tab1 = f.member(2, "bob");
    ada.drain();
    let mut bob_tab2 = f.connect_with(3, 64, user("bob", "Bob", 3));
    f.hub.handle(3, hello("bob"));
    f.hub.handle(3, join("general", None));
    bob_tab2.drain();
    assert!(ada.drain().is_empty(), "bob was already here");
    f.hub.disconnect(2);
    assert!(ada.drain().is_empty(), "bob is still here in another tab");
    f.say(&ada, "general", "still there?", "c1");
    assert_eq!(bodies(&bob_tab2.drain()), ["still there?"]);
    ada.drain();
    f.hub.disconnect(3);
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::Presence {
            event: PresenceEvent::Left,
            ..
        }]
    ));
    drop(bob_tab1.drain());
}

#[test]
fn signing_out_closes_that_sign_in_or_all_of_them() {
    let mut f = Fixture::new();
    let phone = f.member(1, "ada");
    let laptop = f.connect_with(2, 64, user("ada", "Ada", 2));
    let bob = f.member(3, "bob");
    let phone_key = match user("ada", "Ada", 1) {
        Identity::User { session, .. } => session,
        Identity::Guest => unreachable!(),
    };
    f.hub.signed_out("ada", Some(phone_key));
    assert_eq!(phone.close_code(), Some(close::SIGNED_OUT));
    assert_eq!(laptop.close_code(), None);
    f.hub.signed_out("ada", None);
    assert_eq!(laptop.close_code(), Some(close::SIGNED_OUT));
    assert_eq!(bob.close_code(), None);
}

#[test]
fn an_account_made_outside_the_server_can_be_messaged_at_once() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    // As `confab-server admin create` does while the server runs: straight into the store.
    crate::store::accounts::AccountStore::open(f.dir.path(), Durability::Process)
        .expect("accounts")
        .create_user(crate::store::accounts::NewUser {
            username: "root",
            display_name: "The Admin",
            password_hash: "$argon2id$not-used-here",
            is_admin: true,
            now_ms: 1,
        })
        .expect("created");
    f.hub.handle(
        1,
        Command::OpenDirect(Username::parse("root").expect("username")),
    );
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::Rooms { rooms, .. }, ServerMsg::Joined { .. }]
            if rooms.iter().any(|r| r.title == "The Admin")
    ));
}

#[test]
fn guests_are_members_only_while_they_are_there() {
    let mut f = Fixture::new();
    let _ada = f.member(1, "ada");
    let mut guest = f.connect(2, 64);
    f.hub.handle(2, hello("Visitor"));
    f.hub.handle(2, join("general", None));
    assert!(matches!(
        guest.drain().last(),
        Some(ServerMsg::Joined { members, .. }) if handles(members) == ["ada", "~visitor"]
    ));
    f.hub.disconnect(2);
    let mut bob = f.member(3, "bob");
    f.hub.handle(3, join("general", None));
    assert!(matches!(
        bob.drain().last(),
        Some(ServerMsg::Joined { members, .. }) if handles(members) == ["ada", "bob"]
    ));
    // Nor were they stored.
    f.flush();
    let mut f = f.restart();
    let mut carol = f.member(4, "carol");
    f.hub.handle(4, join("general", None));
    assert!(matches!(
        carol.drain().last(),
        Some(ServerMsg::Joined { members, .. }) if handles(members) == ["ada", "bob", "carol"]
    ));
}

/// The room list marks the rooms a person belongs to, and every session of theirs hears
/// when that changes, so each tab and device can follow all of them.
#[test]
fn every_session_of_a_person_learns_which_rooms_are_theirs() {
    let mut f = Fixture::new();
    let mut dan = f.member(1, "dan");
    let mut dans_tab = f.member(2, "dan");
    f.hub.handle(1, create("ops"));
    dan.drain();
    dans_tab.drain();
    let theirs = |msgs: &[ServerMsg]| -> Option<bool> {
        msgs.iter().rev().find_map(|m| match m {
            ServerMsg::Rooms { rooms, .. } => {
                rooms.iter().find(|r| r.name == "ops").map(|r| r.member)
            }
            _ => None,
        })
    };

    f.hub.handle(1, join("ops", None));
    let first = dan.drain();
    assert!(
        matches!(first.first(), Some(ServerMsg::Joined { .. })),
        "{first:?}"
    );
    assert_eq!(theirs(&first), Some(true));
    assert_eq!(
        theirs(&dans_tab.drain()),
        Some(true),
        "the other tab learns it too"
    );

    // Joining again (a reconnect) changes nothing, and says nothing about it.
    f.hub.handle(2, join("ops", None));
    assert_eq!(theirs(&dans_tab.drain()), None);
    assert_eq!(theirs(&dan.drain()), None);

    // A fresh session (a reload, another device) sees it in its welcome.
    let mut dans_phone = f.connect_with(3, 8192, user("dan", "Dan", 3));
    f.hub.handle(3, hello("dan"));
    let welcome = dans_phone.drain();
    let listed = welcome.iter().find_map(|m| match m {
        ServerMsg::Welcome { rooms, .. } => {
            rooms.iter().find(|r| r.name == "ops").map(|r| r.member)
        }
        _ => None,
    });
    assert_eq!(listed, Some(true));

    // Leaving ends the membership on every device.
    f.hub.handle(1, Command::Leave(room("ops")));
    assert_eq!(theirs(&dans_phone.drain()), Some(false));
    assert_eq!(theirs(&dan.drain()), Some(false));
    assert_eq!(theirs(&dans_tab.drain()), Some(false));

    // Someone else's joins are not news to Dan.
    let mut eve = f.member(4, "eve");
    f.hub.handle(4, join("ops", None));
    assert_eq!(theirs(&eve.drain()), Some(true));
    assert_eq!(theirs(&dans_tab.drain()), None);
}

#[test]
fn the_owner_leaving_a_private_room_hands_it_to_someone_still_there() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let mut cy = f.member(3, "cy");
    let id = f.create_private(&mut ada, "plans");
    f.hub.handle(1, join(&id, None));
    for user in ["bob", "cy"] {
        f.hub.handle(
            1,
            Command::Invite {
                room: room(&id),
                user: Username::parse(user).expect("username"),
            },
        );
    }
    // Cy is there now, Bob is not: the room goes to whoever can act on it at once.
    f.hub.handle(3, join(&id, None));
    for c in [&mut ada, &mut bob, &mut cy] {
        c.drain();
    }
    f.hub.handle(1, Command::Leave(room(&id)));
    let owner_in = |msgs: &[ServerMsg]| {
        msgs.iter().rev().find_map(|m| match m {
            ServerMsg::Rooms { rooms, .. } => {
                rooms.iter().find(|r| r.name == id).map(|r| r.owner.clone())
            }
            _ => None,
        })
    };
    let adas = ada.drain();
    let told = cy.drain();
    assert_eq!(
        owner_in(&told),
        Some(Some("cy".to_owned())),
        "{told:?} {adas:?}"
    );
    assert_eq!(owner_in(&bob.drain()), Some(Some("cy".to_owned())));
    assert_eq!(
        owner_in(&adas),
        None,
        "the room is off Ada's list: {adas:?}"
    );
    // Cy manages it now: renaming is accepted.
    f.hub.handle(
        3,
        Command::RenameRoom {
            room: room(&id),
            title: room("cy-plans"),
        },
    );
    assert_eq!(error_code(&cy.drain()), None);
    // Ownership is stored: it survives a restart.
    f.flush();
    let mut f = f.restart();
    let mut cy = f.member(3, "cy");
    f.hub.handle(3, Command::ListRooms);
    assert_eq!(owner_in(&cy.drain()), Some(Some("cy".to_owned())));
}

#[test]
fn ping_is_answered_with_pong() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    f.hub.handle(1, Command::Ping);
    assert_eq!(ada.drain(), [ServerMsg::Pong]);
}

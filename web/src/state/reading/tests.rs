//! Counting and markers, first as pure functions, then through the reducer: after more
//! messages, deletions, a marker from another device, a reconnect, a switch of rooms.

use confab_shared::{ChangeKind, Person, RoomInfo, limits::MAX_UNREAD_COUNT};

use super::*;

fn person(user: &str, name: &str) -> Person {
    Person {
        user: user.into(),
        name: name.into(),
        guest: user.starts_with(GUEST_PREFIX),
    }
}

fn msg(seq: u64, room: &str, from: &str, body: &str) -> ChatMessage {
    ChatMessage {
        id: seq * 10,
        room: room.into(),
        seq,
        from: from.into(),
        name: from.to_uppercase(),
        body: body.into(),
        ts: 0,
        ..ChatMessage::default()
    }
}

/// Messages `seqs` of #general, from bob unless `from` says otherwise, mentioning ada
/// where `mentions` says.
fn held(seqs: impl IntoIterator<Item = u64>, from: &str, mentions: &[u64]) -> Vec<Rc<ChatMessage>> {
    seqs.into_iter()
        .map(|s| {
            let body = if mentions.contains(&s) {
                format!("@ada look at {s}")
            } else {
                format!("m{s}")
            };
            Rc::new(msg(s, "general", from, &body))
        })
        .collect()
}

fn counts(messages: u32, mentions: u32) -> Unread {
    Unread { messages, mentions }
}

#[test]
fn only_messages_from_others_after_the_marker_count() {
    let mut messages = held(1..=6, "bob", &[5]);
    messages.push(Rc::new(msg(7, "general", "ada", "mine @ada")));
    let mut deleted = msg(8, "general", "bob", "");
    deleted.deleted = true;
    messages.push(Rc::new(deleted));
    messages.push(Rc::new(msg(9, "general", "carol", "@adam is not ada")));
    assert_eq!(count(&messages, 3, None, "ada"), counts(4, 1));
    assert_eq!(count(&messages, 9, None, "ada"), counts(0, 0));
    assert_eq!(count(&messages, 0, None, "ada"), counts(7, 1));
    assert_eq!(count(&[], 0, None, "ada"), counts(0, 0));
}

#[test]
fn the_server_counts_what_is_older_than_the_held_messages() {
    // 150 unread after marker 50, three of them mentions; the join brought the newest
    // 100 (seq 101..=200), two of which mention ada.
    let messages = held(101..=200, "bob", &[150, 199]);
    let older = older_from_joined(&messages, 50, 200, counts(150, 3), "ada");
    assert_eq!(
        older,
        Older {
            below: 101,
            counts: counts(50, 1)
        }
    );
    assert_eq!(count(&messages, 50, Some(older), "ada"), counts(150, 3));
    // Read into the held ones (another device): the older remainder is read too.
    assert_eq!(count(&messages, 150, Some(older), "ada"), counts(50, 1));
    assert_eq!(count(&messages, 100, Some(older), "ada"), counts(100, 2));
    // Older messages loaded by scrolling back are not counted twice.
    let mut scrolled = held(91..=100, "bob", &[95]);
    scrolled.extend(messages.iter().cloned());
    assert_eq!(count(&scrolled, 50, Some(older), "ada"), counts(150, 3));
}

#[test]
fn an_empty_join_leaves_the_whole_count_to_the_server() {
    let older = older_from_joined(&[], 4, 9, counts(3, 1), "ada");
    assert_eq!(
        older,
        Older {
            below: 10,
            counts: counts(3, 1)
        }
    );
    assert_eq!(count(&[], 4, Some(older), "ada"), counts(3, 1));
    // Messages arriving after it add to it.
    let live = held([10, 11], "bob", &[11]);
    assert_eq!(count(&live, 4, Some(older), "ada"), counts(5, 2));
    assert_eq!(count(&live, 11, Some(older), "ada"), counts(0, 0));
}

#[test]
fn counts_stop_at_the_cap() {
    let messages = held(1..=20, "bob", &[]);
    let older = Older {
        below: 1,
        counts: counts(0, 0),
    };
    let capped = Older {
        below: 1_000_000,
        counts: counts(MAX_UNREAD_COUNT, 0),
    };
    assert_eq!(count(&messages, 0, Some(older), "ada").messages, 20);
    let messages = held(1_000_000..1_000_020, "bob", &[]);
    assert_eq!(
        count(&messages, 0, Some(capped), "ada").messages,
        MAX_UNREAD_COUNT
    );
    assert_eq!(badge(MAX_UNREAD_COUNT), "9999+");
    assert_eq!(badge(12), "12");
}

#[test]
fn words_and_title_follow_the_counts() {
    assert_eq!(describe(counts(3, 0)), "3 unread");
    assert_eq!(describe(counts(3, 1)), "3 unread, 1 mention");
    assert_eq!(describe(counts(3, 2)), "3 unread, 2 mentions");
    assert_eq!(title(0), "Confab");
    assert_eq!(title(3), "(3) Confab");
    assert_eq!(title(MAX_UNREAD_COUNT), "(9999+) Confab");
}

#[test]
fn a_marker_is_sent_only_when_it_moves_forward() {
    let messages = held(1..=5, "bob", &[]);
    assert_eq!(mark_target(&messages, 2, 0), Some(5));
    assert_eq!(mark_target(&messages, 2, 5), None, "sent already");
    assert_eq!(mark_target(&messages, 5, 0), None, "read already");
    assert_eq!(mark_target(&messages, 7, 0), None, "read further elsewhere");
    assert_eq!(mark_target(&[], 0, 0), None);
}

#[test]
fn the_divider_goes_above_the_first_message_from_someone_else() {
    let mut messages = held(1..=3, "bob", &[]);
    messages.push(Rc::new(msg(4, "general", "ada", "mine")));
    messages.push(Rc::new(msg(5, "general", "bob", "new")));
    assert_eq!(first_unread(&messages, 3, "ada"), Some(50));
    assert_eq!(first_unread(&messages, 1, "ada"), Some(20));
    assert_eq!(first_unread(&messages, 5, "ada"), None);
}

#[test]
fn a_notification_shows_the_first_line() {
    assert_eq!(first_line("\n  hello there \nsecond"), "hello there");
    let long = "x".repeat(ALERT_BODY_CHARS + 5);
    assert_eq!(first_line(&long).chars().count(), ALERT_BODY_CHARS + 1);
}

// Through the reducer.

fn room(name: &str, kind: RoomKind) -> RoomInfo {
    RoomInfo {
        name: name.into(),
        title: name.into(),
        kind,
        owner: None,
        online: 1,
        peer: None,
        member: true,
        muted: false,
    }
}

fn server(s: &mut State, msg: ServerMsg) {
    s.apply(Action::Server { msg, now: 0.0 });
}

/// The server welcomes `you` with `rooms`.
fn welcome(s: &mut State, you: Person, rooms: Vec<RoomInfo>) {
    server(
        s,
        ServerMsg::Welcome {
            protocol: confab_shared::PROTOCOL_VERSION,
            epoch: "e".into(),
            you,
            rooms,
        },
    );
}

fn joined(
    room: &str,
    history: Vec<ChatMessage>,
    read: u64,
    unread: u32,
    mentions: u32,
) -> ServerMsg {
    let through = history.last().map_or(read, |m| m.seq);
    ServerMsg::Joined {
        room: room.into(),
        members: vec![],
        member_count: 2,
        online: vec![],
        history,
        through,
        read,
        unread,
        mentions,
    }
}

/// Ada, welcomed with #general, #ops and a direct conversation with bob, all joined
/// empty, #general on screen.
fn ada_in_rooms() -> State {
    let mut s = State::default();
    let you = person("ada", "Ada");
    let mut dm = room("_dbob", RoomKind::Direct);
    dm.peer = Some(person("bob", "Bob"));
    welcome(
        &mut s,
        you,
        vec![
            room("general", RoomKind::Public),
            room("ops", RoomKind::Public),
            dm,
        ],
    );
    for name in ["general", "ops", "_dbob"] {
        server(&mut s, joined(name, vec![], 0, 0, 0));
    }
    s
}

fn live(s: &mut State, seq: u64, room: &str, from: &str, body: &str) {
    server(s, ServerMsg::Message(msg(seq, room, from, body)));
}

#[test]
fn live_messages_count_until_read_here_or_elsewhere() {
    let mut s = ada_in_rooms();
    live(&mut s, 1, "ops", "bob", "hi");
    live(&mut s, 2, "ops", "bob", "hi @ada");
    live(&mut s, 3, "ops", "ada", "hello");
    assert_eq!(s.unread("ops"), counts(2, 1));
    assert_eq!(s.unread_total(), 2);
    // Read on another device up to 1.
    server(
        &mut s,
        ServerMsg::Read {
            room: "ops".into(),
            seq: 1,
        },
    );
    assert_eq!(s.unread("ops"), counts(1, 1));
    // A marker never moves back.
    server(
        &mut s,
        ServerMsg::Read {
            room: "ops".into(),
            seq: 0,
        },
    );
    assert_eq!(s.joined["ops"].read, 1);
    s.apply(Action::Reading(ReadingAction::Marked {
        room: "ops".into(),
        seq: 3,
    }));
    assert_eq!(s.unread("ops"), counts(0, 0));
    assert_eq!(s.unread_total(), 0);
}

#[test]
fn a_deleted_message_no_longer_counts() {
    let mut s = ada_in_rooms();
    live(&mut s, 1, "ops", "bob", "hi @ada");
    live(&mut s, 2, "ops", "bob", "oops");
    assert_eq!(s.unread("ops"), counts(2, 1));
    // However the deletion reaches the view, the count follows the message.
    let view = s.view_mut("ops").expect("joined");
    let change = confab_shared::Change {
        room: "ops".into(),
        seq: 3,
        target: 1,
        by: "bob".into(),
        ts: 0,
        change: ChangeKind::Deleted,
    };
    Rc::make_mut(&mut Rc::make_mut(&mut view.messages)[0]).apply(&change);
    assert_eq!(s.unread("ops"), counts(1, 0));
}

#[test]
fn a_reconnect_takes_the_servers_word_again() {
    let mut s = ada_in_rooms();
    live(&mut s, 1, "ops", "bob", "one");
    live(&mut s, 2, "ops", "bob", "two @ada");
    // Disconnected; meanwhile 3 and 4 came and ada read up to 3 on her phone. The
    // replay brings 3 and 4; the server counts 4 only.
    server(
        &mut s,
        joined(
            "ops",
            vec![
                msg(3, "ops", "bob", "three"),
                msg(4, "ops", "bob", "four @ada"),
            ],
            3,
            1,
            1,
        ),
    );
    assert_eq!(s.unread("ops"), counts(1, 1));
    assert_eq!(s.joined["ops"].read, 3);
}

#[test]
fn a_fresh_join_counts_history_once() {
    let mut s = ada_in_rooms();
    s.apply(Action::Switch("ops".into()));
    // #lobby: 30 unread after marker 10, the join holding the newest 5 (26..=30).
    let history: Vec<ChatMessage> = (26..=30)
        .map(|seq| msg(seq, "lobby", "bob", if seq == 30 { "@ada" } else { "x" }))
        .collect();
    server(&mut s, joined("lobby", history, 10, 20, 2));
    assert_eq!(s.unread("lobby"), counts(20, 2));
    live(&mut s, 31, "lobby", "bob", "y");
    assert_eq!(s.unread("lobby"), counts(21, 2));
}

#[test]
fn muted_rooms_stay_out_of_the_title() {
    let mut s = ada_in_rooms();
    live(&mut s, 1, "ops", "bob", "hi");
    live(&mut s, 1, "general", "bob", "hi");
    assert_eq!(s.unread_total(), 2);
    s.apply(Action::Reading(ReadingAction::Muted {
        room: "ops".into(),
        muted: true,
    }));
    assert!(s.muted("ops"));
    assert_eq!(s.unread_total(), 1);
    assert_eq!(s.unread("ops").messages, 1, "still counted, quietly");
}

#[test]
fn the_divider_stays_while_reading_and_goes_after() {
    let mut s = ada_in_rooms();
    live(&mut s, 1, "ops", "bob", "old");
    s.apply(Action::Reading(ReadingAction::Marked {
        room: "ops".into(),
        seq: 1,
    }));
    live(&mut s, 2, "ops", "bob", "new");
    live(&mut s, 3, "ops", "bob", "newer");
    s.apply(Action::Switch("ops".into()));
    assert_eq!(s.joined["ops"].divider, Some(1));
    assert_eq!(s.divider_before(), Some(20));
    s.apply(Action::Reading(ReadingAction::Marked {
        room: "ops".into(),
        seq: 3,
    }));
    live(&mut s, 4, "ops", "bob", "while reading");
    assert_eq!(s.divider_before(), Some(20), "stays while the room is open");
    s.apply(Action::Switch("general".into()));
    assert_eq!(s.joined["ops"].divider, None);
    s.apply(Action::Reading(ReadingAction::Marked {
        room: "ops".into(),
        seq: 4,
    }));
    s.apply(Action::Switch("ops".into()));
    assert_eq!(s.divider_before(), None, "nothing unread when back");
}

#[test]
fn the_room_on_screen_at_load_gets_its_divider_with_the_join() {
    let mut s = State::default();
    welcome(
        &mut s,
        person("ada", "Ada"),
        vec![room("general", RoomKind::Public)],
    );
    let history = vec![msg(1, "general", "bob", "a"), msg(2, "general", "bob", "b")];
    server(&mut s, joined("general", history.clone(), 1, 1, 0));
    assert_eq!(s.divider_before(), Some(20));
    // A reconnect's join leaves it where it is.
    s.apply(Action::Reading(ReadingAction::Marked {
        room: "general".into(),
        seq: 2,
    }));
    server(&mut s, joined("general", history, 2, 0, 0));
    assert_eq!(s.divider_before(), Some(20));
}

#[test]
fn a_guest_keeps_a_marker_here_from_the_first_join() {
    let mut s = State::default();
    welcome(
        &mut s,
        person("~zoe", "zoe"),
        vec![room("general", RoomKind::Public)],
    );
    let history = vec![msg(1, "general", "bob", "a"), msg(2, "general", "bob", "b")];
    server(&mut s, joined("general", history, 0, 0, 0));
    assert_eq!(s.unread("general"), counts(0, 0), "history is not news");
    live(&mut s, 3, "general", "bob", "c");
    assert_eq!(s.unread("general"), counts(1, 0));
    // A reconnect (the server knows no marker of a guest's) keeps this one.
    server(
        &mut s,
        joined("general", vec![msg(4, "general", "bob", "d")], 0, 0, 0),
    );
    assert_eq!(s.unread("general"), counts(2, 0));
}

#[test]
fn mentions_and_direct_messages_call_for_a_notification() {
    let mut s = ada_in_rooms();
    live(&mut s, 1, "ops", "bob", "no mention");
    live(&mut s, 2, "ops", "ada", "mine @ada");
    assert!(s.alerts.is_empty());
    live(&mut s, 3, "ops", "bob", "ping @ada\nmore");
    live(&mut s, 1, "_dbob", "bob", "psst");
    let got: Vec<(&str, &str, &str)> = s
        .alerts
        .iter()
        .map(|a| (a.room.as_str(), a.title.as_str(), a.body.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("ops", "BOB in #ops", "ping @ada"),
            ("_dbob", "BOB", "psst")
        ]
    );
    // The same message again (delivered twice) is not news.
    live(&mut s, 1, "_dbob", "bob", "psst");
    assert_eq!(s.alerts.len(), 2);
    s.apply(Action::Reading(ReadingAction::AlertsHandled(2)));
    assert!(s.alerts.is_empty());
    // Muted: no notification.
    s.apply(Action::Reading(ReadingAction::Muted {
        room: "_dbob".into(),
        muted: true,
    }));
    live(&mut s, 2, "_dbob", "bob", "again");
    assert!(s.alerts.is_empty());
    for seq in 10..30 {
        live(&mut s, seq, "ops", "bob", "@ada");
    }
    assert_eq!(s.alerts.len(), MAX_ALERTS, "only the newest wait");
}

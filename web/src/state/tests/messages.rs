//! Messages, history, presence and typing in the view.

use super::*;

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
fn messages_count_unread_until_read_and_switching_shows_a_room() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![]));
    server(&mut s, joined("ops", vec![]));
    server(&mut s, ServerMsg::Message(msg(1, "ops", "b")));
    assert_eq!(s.unread("ops").messages, 1);
    assert_eq!(s.unread("general").messages, 0);
    s.apply(Action::Switch("ops".into()));
    assert_eq!(s.current, "ops");
    // Read once seen there (see state/reading.rs), not by switching alone.
    assert_eq!(s.unread("ops").messages, 1);
    // A room being joined is shown at once; its messages arrive with the join.
    s.apply(Action::Switch("new".into()));
    assert_eq!(s.current, "new");
    assert!(s.current_room().is_none());
}

#[test]
fn presence_updates_who_is_online_by_username() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![]));
    let presence = |who: Person, event| ServerMsg::Presence {
        room: "general".into(),
        who,
        event,
    };
    server(
        &mut s,
        presence(person("bob", "Bob"), PresenceEvent::Joined),
    );
    server(
        &mut s,
        presence(person("~carol", "carol"), PresenceEvent::Joined),
    );
    let names = |s: &State| -> Vec<String> {
        s.joined["general"]
            .online_people()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    assert_eq!(names(&s), ["Ada Lovelace", "Bob", "carol"]);
    // A new display name replaces the old one, under the same username.
    server(
        &mut s,
        presence(person("bob", "Robert"), PresenceEvent::Joined),
    );
    assert_eq!(names(&s), ["Ada Lovelace", "carol", "Robert"]);
    server(
        &mut s,
        presence(person("bob", "Robert"), PresenceEvent::Left),
    );
    assert_eq!(names(&s), ["Ada Lovelace", "carol"]);
    assert_eq!(s.joined["general"].members.len(), 3, "still a member");
}

#[test]
fn someone_online_before_the_member_list_knows_them_still_shows() {
    let mut s = State::default();
    server(
        &mut s,
        ServerMsg::Joined {
            room: "general".into(),
            members: vec![ada()],
            member_count: 2,
            online: vec!["ada".into(), "~zoe".into()],
            history: vec![],
            through: 0,
            read: 0,
            unread: 0,
            mentions: 0,
        },
    );
    let online = s.joined["general"].online_people();
    assert_eq!(online.len(), 2);
    assert_eq!(online[1], person("~zoe", "zoe"));
    assert!(online[1].guest);
}

#[test]
fn a_member_list_replaces_the_old_one() {
    let mut s = State::default();
    server(&mut s, joined("_p1", vec![]));
    server(
        &mut s,
        ServerMsg::Members {
            room: "_p1".into(),
            members: vec![person("zed", "Zed"), ada(), person("bob", "bob")],
        },
    );
    let users: Vec<&str> = s.joined["_p1"]
        .members
        .iter()
        .map(|p| p.user.as_str())
        .collect();
    assert_eq!(users, ["ada", "bob", "zed"], "sorted by display name");
}

#[test]
fn typing_shows_display_names_and_ends_with_a_message() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![]));
    let typing = |who: Person| ServerMsg::Typing {
        room: "general".into(),
        who,
    };
    server(&mut s, typing(person("bob", "Bob B")));
    server(&mut s, typing(person("carol", "Carol")));
    server(&mut s, typing(person("bob", "Bob B")));
    assert_eq!(s.typing_names(), ["Bob B", "Carol"]);
    // Messages name their sender by username.
    server(&mut s, ServerMsg::Message(msg(1, "general", "bob")));
    assert_eq!(s.typing_names(), ["Carol"]);
    s.apply(Action::Tick {
        now: 1000.0 + limits::TYPING_TTL_MS as f64 - 1.0,
    });
    assert_eq!(s.typing_names(), ["Carol"]);
    s.apply(Action::Tick {
        now: 1000.0 + limits::TYPING_TTL_MS as f64 + 1.0,
    });
    assert!(s.typing_names().is_empty());
}

#[test]
fn leaving_the_current_room_goes_back_to_general_quietly() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![]));
    server(&mut s, joined("ops", vec![]));
    s.apply(Action::Switch("ops".into()));
    s.apply(Action::Leaving("ops".into()));
    server(&mut s, ServerMsg::Left { room: "ops".into() });
    assert_eq!(s.current, "general");
    assert!(!s.joined.contains_key("ops"));
    assert_eq!(s.notice, None);
    assert!(s.leaving.is_empty());
}

#[test]
fn being_removed_or_the_room_deleted_goes_back_to_general_with_a_notice() {
    let mut s = signed_in(vec![room("_p1", "plans", RoomKind::Private)]);
    server(&mut s, joined("_p1", vec![]));
    s.apply(Action::Switch("_p1".into()));
    server(&mut s, ServerMsg::Left { room: "_p1".into() });
    assert_eq!(s.current, "general");
    assert!(!s.joined.contains_key("_p1"));
    assert_eq!(s.notice.as_deref(), Some("You are no longer in #plans."));
}

#[test]
fn a_vanished_room_is_dropped_with_a_notice() {
    let mut s = State::default();
    server(&mut s, joined("ops", vec![]));
    s.apply(Action::Switch("ops".into()));
    server(
        &mut s,
        error(ErrorCode::UnknownRoom, "there is no room #ops", Some("ops")),
    );
    assert!(!s.joined.contains_key("ops"));
    assert_eq!(s.current, "general");
    assert!(s.notice.is_some());
}

#[test]
fn an_ack_turns_the_pending_message_into_a_delivered_one_once() {
    let mut s = signed_in(vec![]);
    s.apply(Action::Outbox(vec![Pending {
        client_id: "c1".into(),
        room: "general".into(),
        body: "hi".into(),
        failed: None,
        reply_to: None,
        change: None,
        files: Vec::new(),
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
    let shown = &s.joined["general"].messages[0];
    assert_eq!(
        (shown.from.as_str(), shown.name.as_str()),
        ("ada", "Ada Lovelace"),
        "ours: our username and display name"
    );
    s.apply(Action::Outbox(vec![]));
    let mut copy = msg(9, "general", "ada");
    copy.seq = 4;
    copy.body = "hi".into();
    copy.ts = 5;
    server(&mut s, ServerMsg::Message(copy));
    let view = &s.joined["general"];
    assert_eq!(view.messages.len(), 1);
    assert_eq!(view.messages[0].body, "hi");
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

/// The server answers a repeated `join` on a live connection with an empty `history`:
/// the room keeps its messages, and what it knew about older ones.
#[test]
fn a_joined_without_history_keeps_the_messages_and_whether_older_exist() {
    let mut s = State::default();
    server(
        &mut s,
        joined(
            "general",
            vec![msg(50, "general", "a"), msg(51, "general", "b")],
        ),
    );
    server(&mut s, ServerMsg::Message(msg(52, "general", "a")));
    server(&mut s, joined("general", vec![]));
    let view = &s.joined["general"];
    let ids = |v: &RoomView| v.messages.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(view), [50, 51, 52]);
    assert!(view.has_older);
    server(
        &mut s,
        ServerMsg::History {
            room: "general".into(),
            messages: (1..50).map(|i| msg(i, "general", "a")).collect(),
            more: false,
        },
    );
    server(&mut s, joined("general", vec![]));
    let view = &s.joined["general"];
    assert_eq!(ids(view), (1..=52).collect::<Vec<_>>());
    assert!(
        !view.has_older,
        "scrolled back to the first message already"
    );
}

#[test]
fn disconnecting_clears_presence_but_keeps_messages() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![msg(1, "general", "a")]));
    s.apply(Action::Conn(Conn::Reconnecting { retry_in_ms: 500 }));
    assert!(s.joined["general"].online.is_empty());
    assert_eq!(s.joined["general"].messages.len(), 1);
}

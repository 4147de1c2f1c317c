//! Rooms: what they are called, who manages them, the forms about them, following and
//! closing them.

use super::*;

#[test]
fn rooms_are_called_by_title_and_direct_ones_by_the_other_person() {
    let s = signed_in(vec![
        room("general", "general", RoomKind::Public),
        room("_p1", "plans", RoomKind::Private),
        direct("_d1", person("grace", "Grace Hopper")),
    ]);
    assert_eq!(s.label("general"), "#general");
    assert_eq!(s.label("_p1"), "#plans");
    assert_eq!(s.label("_d1"), "@Grace Hopper");
    assert_eq!(s.label("unlisted"), "#unlisted");
    assert_eq!(s.direct_with("grace").map(|r| r.name.as_str()), Some("_d1"));
    assert_eq!(s.direct_with("ada"), None);
}

#[test]
fn only_the_owner_owns_a_room() {
    let mine = RoomInfo {
        owner: Some("ada".into()),
        ..room("_p1", "plans", RoomKind::Private)
    };
    let theirs = RoomInfo {
        owner: Some("bob".into()),
        ..room("_p2", "other", RoomKind::Private)
    };
    let s = signed_in(vec![
        room("general", "general", RoomKind::Public),
        mine,
        theirs,
    ]);
    assert!(s.owns("_p1"));
    assert!(!s.owns("_p2"));
    assert!(!s.owns("general"), "no owner");
    assert!(!State::default().owns("_p1"), "nobody signed in");
    assert!(s.manages("_p1") && !s.manages("_p2"));
}

#[test]
fn an_administrator_manages_every_room_but_direct_ones() {
    let mut s = State::default();
    s.apply(Action::SignedIn(Me {
        admin: true,
        ..me(ada(), false)
    }));
    server(
        &mut s,
        ServerMsg::Rooms {
            rooms: vec![
                room("general", "general", RoomKind::Public),
                room("_p2", "other", RoomKind::Private),
                direct("_d1", person("grace", "Grace")),
            ],
        },
    );
    assert!(s.manages("general") && s.manages("_p2"));
    assert!(!s.manages("_d1"));
    assert!(!s.owns("_p2"));
}

#[test]
fn our_created_room_is_shown_once_listed() {
    let mut s = signed_in(vec![]);
    server(
        &mut s,
        ServerMsg::Rooms {
            rooms: vec![room("_p9", "plans", RoomKind::Private)],
        },
    );
    assert_eq!(s.current, "general", "someone else's room");
    server(
        &mut s,
        ServerMsg::RoomsChanged {
            rooms: vec![room("_p9", "plans", RoomKind::Private)],
            removed: vec![],
            created: Some("_p9".into()),
        },
    );
    assert_eq!(s.current, "_p9");
    assert_eq!(s.label(&s.current), "#plans");
}

#[test]
fn an_opened_direct_conversation_is_shown_once_joined() {
    let mut s = signed_in(vec![]);
    s.apply(Action::OpeningDirect("grace".into()));
    let rooms = vec![direct("_d1", person("grace", "Grace"))];
    server(&mut s, ServerMsg::Rooms { rooms });
    // Someone else's direct conversation joined meanwhile changes nothing.
    server(&mut s, joined("_d0", vec![]));
    assert_eq!(s.current, "general");
    server(&mut s, joined("_d1", vec![]));
    assert_eq!(s.current, "_d1");
    assert_eq!(s.opening_direct, None);
}

#[test]
fn a_refused_room_request_shows_on_its_form_not_as_a_notice() {
    let mut s = signed_in(vec![room("_p1", "plans", RoomKind::Private)]);
    server(&mut s, joined("_p1", vec![]));
    s.apply(Action::Switch("_p1".into()));
    s.apply(Action::RoomRequest {
        room: "_p1".into(),
        tool: RoomTool::Invite,
        subject: "nobody".into(),
    });
    server(
        &mut s,
        error(
            ErrorCode::UnknownUser,
            "there is no user \"nobody\"",
            Some("_p1"),
        ),
    );
    assert_eq!(
        s.room_error(RoomTool::Invite),
        Some("there is no user \"nobody\"")
    );
    assert_eq!(s.room_error(RoomTool::Rename), None);
    assert_eq!(s.notice, None);
    // Gone once another room is on screen.
    s.apply(Action::Switch("general".into()));
    assert_eq!(s.room_request, None);
    // Without a form request, the same refusal is a notice.
    server(&mut s, error(ErrorCode::UnknownUser, "no such user", None));
    assert_eq!(s.notice.as_deref(), Some("no such user"));
}

#[test]
fn room_requests_are_done_when_the_server_says_so() {
    let mut s = signed_in(vec![room("_p1", "plans", RoomKind::Private)]);
    server(&mut s, joined("_p1", vec![]));
    s.apply(Action::Switch("_p1".into()));
    s.apply(Action::RoomRequest {
        room: "_p1".into(),
        tool: RoomTool::Invite,
        subject: "bob".into(),
    });
    server(
        &mut s,
        ServerMsg::Members {
            room: "_p1".into(),
            members: vec![ada()],
        },
    );
    assert!(!s.room_request(RoomTool::Invite).is_some_and(|r| r.done));
    server(
        &mut s,
        ServerMsg::Members {
            room: "_p1".into(),
            members: vec![ada(), person("bob", "Bob")],
        },
    );
    assert!(s.room_request(RoomTool::Invite).is_some_and(|r| r.done));

    s.apply(Action::RoomRequest {
        room: "_p1".into(),
        tool: RoomTool::Rename,
        subject: "schemes".into(),
    });
    server(
        &mut s,
        ServerMsg::RoomsChanged {
            rooms: vec![room("_p1", "schemes", RoomKind::Private)],
            removed: vec![],
            created: None,
        },
    );
    assert!(s.room_request(RoomTool::Rename).is_some_and(|r| r.done));
    assert_eq!(s.label("_p1"), "#schemes");
}

#[test]
fn deleting_our_room_is_not_news() {
    let mut s = signed_in(vec![room("_p1", "plans", RoomKind::Private)]);
    server(&mut s, joined("_p1", vec![]));
    s.apply(Action::Switch("_p1".into()));
    s.apply(Action::RoomRequest {
        room: "_p1".into(),
        tool: RoomTool::Delete,
        subject: String::new(),
    });
    s.apply(Action::Leaving("_p1".into()));
    server(&mut s, ServerMsg::Left { room: "_p1".into() });
    assert_eq!(s.current, "general");
    assert_eq!(s.notice, None);
    assert_eq!(s.room_request, None);
}

#[test]
fn rooms_no_longer_followed_after_a_reconnect_are_dropped() {
    let mut s = signed_in(vec![room("general", "general", RoomKind::Public)]);
    for name in ["general", "ops", "design"] {
        server(
            &mut s,
            ServerMsg::Joined {
                room: name.into(),
                members: vec![],
                member_count: 0,
                online: vec![],
                history: vec![],
                through: 0,
                read: 0,
                unread: 0,
                mentions: 0,
            },
        );
    }
    s.apply(Action::Switch("ops".into()));
    // Left #ops on another device while this tab was away.
    s.apply(Action::Following(
        ["general", "design"].map(str::to_owned).into(),
    ));
    assert_eq!(s.joined.keys().collect::<Vec<_>>(), ["design", "general"]);
    assert_eq!(s.current, "general", "the room on screen was one of them");
}

#[test]
fn a_closed_conversation_comes_back_with_the_next_message_only() {
    let grace = person("grace", "Grace");
    let mut s = signed_in(vec![
        room("general", "general", RoomKind::Public),
        direct("_d1", grace.clone()),
    ]);
    server(&mut s, joined("general", vec![]));
    server(&mut s, joined("_d1", vec![msg(1, "_d1", "grace")]));
    s.apply(Action::Switch("_d1".into()));
    s.apply(Action::CloseDirect("_d1".into()));
    assert!(s.is_closed("_d1"));
    assert_eq!(
        s.current, "general",
        "closing the one on screen goes back to the default room"
    );
    // A reconnect resends what was there: not news.
    server(&mut s, joined("_d1", vec![msg(1, "_d1", "grace")]));
    assert!(s.is_closed("_d1"));
    // A new message is: the conversation is back, counted unread.
    server(&mut s, ServerMsg::Message(msg(2, "_d1", "grace")));
    assert!(!s.is_closed("_d1"));
    assert_eq!(s.unread("_d1").messages, 2);
}

#[test]
fn a_refused_creation_shows_at_its_form_until_the_person_moves_on() {
    let mut s = signed_in(vec![room("general", "general", RoomKind::Public)]);
    s.apply(Action::RoomRequest {
        room: "ideas".into(),
        tool: RoomTool::Create,
        subject: "ideas".into(),
    });
    server(
        &mut s,
        error(
            ErrorCode::RoomExists,
            "#ideas already exists",
            Some("ideas"),
        ),
    );
    assert_eq!(s.notice, None, "not in the banner");
    assert_eq!(
        s.room_request(RoomTool::Create)
            .and_then(|r| r.error.as_deref()),
        Some("#ideas already exists")
    );
    s.apply(Action::ForgetRoomRequest(RoomTool::Create));
    assert_eq!(s.room_request(RoomTool::Create), None);
}

#[test]
fn choosing_a_room_closes_the_phone_drawer_and_old_notices() {
    let mut s = signed_in(vec![room("general", "general", RoomKind::Public)]);
    server(&mut s, joined("general", vec![]));
    server(&mut s, joined("ops", vec![]));
    s.apply(Action::Notice("something old".into()));
    s.apply(Action::Drawer(Some(Drawer::Rooms)));
    s.apply(Action::Switch("ops".into()));
    assert_eq!(s.drawer, None);
    assert_eq!(s.notice, None);
}

/// `rooms_changed` replaces the entries it names, adds new ones in id order, and drops
/// the removed ones; the rest of the list stays as it was.
#[test]
fn a_rooms_delta_updates_adds_and_removes_entries() {
    let mut s = signed_in(vec![
        room("general", "general", RoomKind::Public),
        room("ops", "ops", RoomKind::Public),
        room("zoo", "zoo", RoomKind::Public),
    ]);
    server(
        &mut s,
        ServerMsg::RoomsChanged {
            rooms: vec![
                room("ops", "operations", RoomKind::Public),
                room("music", "music", RoomKind::Public),
            ],
            removed: vec!["zoo".into(), "never-seen".into()],
            created: None,
        },
    );
    let names: Vec<&str> = s.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["general", "music", "ops"]);
    assert_eq!(s.label("ops"), "#operations");
    assert_eq!(s.current, "general", "someone else's changes move nothing");
}

/// A big public room is not listed whole: `joined` names those online and counts the
/// members, and the count is what the member list shows beside them.
#[test]
fn a_public_room_counts_its_members_and_lists_those_online() {
    let mut s = signed_in(vec![room("general", "general", RoomKind::Public)]);
    server(
        &mut s,
        ServerMsg::Joined {
            room: "general".into(),
            members: vec![ada()],
            member_count: 50_000,
            online: vec!["ada".into()],
            history: vec![],
            through: 0,
            read: 0,
            unread: 0,
            mentions: 0,
        },
    );
    let view = s.joined.get("general").expect("joined");
    assert_eq!(view.member_count, 50_000);
    let online: Vec<String> = view.online_people().into_iter().map(|p| p.user).collect();
    assert_eq!(online, ["ada"]);
}

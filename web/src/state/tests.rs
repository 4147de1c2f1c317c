use super::*;

fn person(user: &str, name: &str) -> Person {
    Person {
        user: user.into(),
        name: name.into(),
        guest: user.starts_with(confab_shared::GUEST_PREFIX),
    }
}

fn ada() -> Person {
    person("ada", "Ada Lovelace")
}

fn msg(id: u64, room: &str, from: &str) -> ChatMessage {
    ChatMessage {
        id,
        seq: id,
        room: room.into(),
        from: from.into(),
        name: from.to_uppercase(),
        body: format!("m{id}"),
        ts: 0,
    }
}

fn room(name: &str, title: &str, kind: RoomKind) -> RoomInfo {
    RoomInfo {
        name: name.into(),
        title: title.into(),
        kind,
        owner: None,
        online: 1,
        peer: None,
        member: false,
    }
}

fn direct(name: &str, peer: Person) -> RoomInfo {
    RoomInfo {
        title: peer.name.clone(),
        peer: Some(peer),
        ..room(name, "", RoomKind::Direct)
    }
}

fn server(state: &mut State, msg: ServerMsg) {
    state.apply(Action::Server { msg, now: 1000.0 });
}

fn error(code: ErrorCode, message: &str, room: Option<&str>) -> ServerMsg {
    ServerMsg::Error {
        code,
        message: message.into(),
        room: room.map(Into::into),
        client_id: None,
        retry_after_ms: None,
    }
}

fn joined(room: &str, history: Vec<ChatMessage>) -> ServerMsg {
    ServerMsg::Joined {
        room: room.into(),
        members: vec![ada()],
        online: vec!["ada".into()],
        history,
    }
}

fn me(you: Person, guests_allowed: bool) -> Me {
    Me {
        you,
        admin: false,
        guests_allowed,
    }
}

/// Signed in as ada, welcomed, in #general.
fn signed_in(rooms: Vec<RoomInfo>) -> State {
    let mut s = State::default();
    s.apply(Action::SignedIn(me(ada(), true)));
    server(
        &mut s,
        ServerMsg::Welcome {
            protocol: confab_shared::PROTOCOL_VERSION,
            you: ada(),
            rooms,
        },
    );
    server(&mut s, joined("general", vec![]));
    s
}

#[test]
fn a_page_starts_by_checking_who_it_is() {
    let s = State::default();
    assert!(s.checking);
    assert_eq!(s.me, None);
}

#[test]
fn signing_in_shows_the_chat_and_connects() {
    let mut s = State::default();
    s.apply(Action::AuthBusy(AuthForm::SignIn));
    s.apply(Action::SignedIn(me(ada(), false)));
    assert!(!s.checking);
    assert_eq!(s.me.as_ref().map(|p| p.user.as_str()), Some("ada"));
    assert_eq!(s.conn, Conn::Connecting);
    assert_eq!(s.auth_busy, None);
    assert!(!s.guests_allowed);
}

#[test]
fn a_refused_sign_in_shows_on_its_form_only() {
    let mut s = State::default();
    s.apply(Action::SignedOut {
        guests_allowed: Some(true),
    });
    s.apply(Action::AuthBusy(AuthForm::SignIn));
    s.apply(Action::AuthFailed(AuthError::new(
        AuthForm::SignIn,
        ApiError {
            retry_after_secs: Some(30),
            ..ApiError::new("too many attempts")
        },
    )));
    assert_eq!(s.auth_busy, None);
    let shown = s
        .auth_error_for(AuthForm::SignIn)
        .expect("error on sign-in");
    assert_eq!(shown.message, "too many attempts (try again in 30 s)");
    assert_eq!(s.auth_error_for(AuthForm::Guest), None);
    // Sending again clears it.
    s.apply(Action::AuthBusy(AuthForm::SignIn));
    assert_eq!(s.auth_error, None);
}

#[test]
fn a_guest_is_welcomed_or_sent_back_to_the_form_with_why() {
    let mut s = State::default();
    s.apply(Action::SignedOut {
        guests_allowed: Some(true),
    });
    s.apply(Action::JoiningAsGuest {
        name: "ada".into(),
        resumed: false,
    });
    assert_eq!(s.auth_busy, Some(AuthForm::Guest));
    assert!(!s.checking, "the form stays on screen");
    server(&mut s, error(ErrorCode::NameTaken, "taken", None));
    assert_eq!(s.me, None);
    assert_eq!(s.joining_as, None);
    let shown = s
        .auth_error_for(AuthForm::Guest)
        .expect("error on guest form");
    assert_eq!(
        (shown.message.as_str(), shown.field.as_deref()),
        ("taken", Some("display_name"))
    );
    assert_eq!(s.notice, None, "the refusal is the only problem shown");

    s.apply(Action::JoiningAsGuest {
        name: "ada2".into(),
        resumed: false,
    });
    assert_eq!(s.auth_error, None);
    let guest = person("~ada2", "ada2");
    server(
        &mut s,
        ServerMsg::Welcome {
            protocol: 3,
            you: guest.clone(),
            rooms: vec![],
        },
    );
    assert_eq!(s.me, Some(guest));
    assert_eq!(s.joining_as, None);
    assert_eq!(s.auth_busy, None);
}

#[test]
fn a_remembered_guest_rejoins_without_showing_the_forms() {
    let mut s = State::default();
    s.apply(Action::SignedOut {
        guests_allowed: Some(true),
    });
    s.apply(Action::JoiningAsGuest {
        name: "ada".into(),
        resumed: true,
    });
    assert!(s.checking);
    // Its name went to someone else meanwhile: the form, with why.
    server(&mut s, error(ErrorCode::NameTaken, "taken", None));
    assert!(!s.checking);
    assert!(s.auth_error_for(AuthForm::Guest).is_some());
}

#[test]
fn signing_out_forgets_the_session_but_not_what_the_server_allows() {
    let mut s = signed_in(vec![room("general", "general", RoomKind::Public)]);
    server(&mut s, ServerMsg::Message(msg(1, "general", "bob")));
    s.apply(Action::Notice("something".into()));
    s.apply(Action::SignedOut {
        guests_allowed: None,
    });
    assert_eq!(s.me, None);
    assert!(s.joined.is_empty() && s.rooms.is_empty());
    assert_eq!(s.notice, None);
    assert_eq!(s.conn, Conn::Idle);
    assert!(!s.checking);
    assert!(s.guests_allowed, "kept from /api/me");
    s.apply(Action::SignedOut {
        guests_allowed: Some(false),
    });
    assert!(!s.guests_allowed);
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
fn presence_updates_who_is_online_by_handle() {
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
    // A new display name replaces the old one, under the same handle.
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
            online: vec!["ada".into(), "~zoe".into()],
            history: vec![],
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
    // Messages name their sender by handle.
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
        "ours: our handle and display name"
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

#[test]
fn disconnecting_clears_presence_but_keeps_messages() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![msg(1, "general", "a")]));
    s.apply(Action::Conn(Conn::Reconnecting { retry_in_ms: 500 }));
    assert!(s.joined["general"].online.is_empty());
    assert_eq!(s.joined["general"].messages.len(), 1);
}

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
            created: None,
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
            created: None,
        },
    );
    assert_eq!(s.current, "general", "someone else's room");
    server(
        &mut s,
        ServerMsg::Rooms {
            rooms: vec![room("_p9", "plans", RoomKind::Private)],
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
    server(
        &mut s,
        ServerMsg::Rooms {
            rooms,
            created: None,
        },
    );
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
        ServerMsg::Rooms {
            rooms: vec![room("_p1", "schemes", RoomKind::Private)],
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
                online: vec![],
                history: vec![],
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
    // A new message is: the conversation is back, marked unread.
    server(&mut s, ServerMsg::Message(msg(2, "_d1", "grace")));
    assert!(!s.is_closed("_d1"));
    assert!(s.joined["_d1"].unread);
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

#[test]
fn a_tick_that_expires_nothing_is_the_same_state_and_renders_nothing() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![msg(1, "general", "ada")]));
    server(
        &mut s,
        ServerMsg::Typing {
            room: "general".into(),
            who: person("grace", "Grace"),
        },
    );
    let before = Rc::new(s);
    // The indicator lasts 5 s from the server time 1000 ms of `server`.
    let after = Rc::clone(&before).reduce(Action::Tick { now: 2_000.0 });
    assert!(
        Rc::ptr_eq(&before, &after),
        "nothing expired: the same state"
    );
    let expired = Rc::clone(&before).reduce(Action::Tick {
        now: 1_000.0 + limits::TYPING_TTL_MS as f64,
    });
    assert!(!Rc::ptr_eq(&before, &expired));
    assert!(expired.joined["general"].typing.is_empty());
}

#[test]
fn a_message_in_one_room_shares_every_other_room_with_the_previous_state() {
    let mut s = State::default();
    server(&mut s, joined("general", vec![msg(1, "general", "ada")]));
    server(&mut s, joined("ops", vec![msg(2, "ops", "ada")]));
    let before = Rc::new(s);
    let after = Rc::clone(&before).reduce(Action::Server {
        msg: ServerMsg::Message(msg(3, "ops", "grace")),
        now: 1_000.0,
    });
    assert!(Rc::ptr_eq(
        &before.joined["general"],
        &after.joined["general"]
    ));
    assert_eq!(after.joined["ops"].messages.len(), 2);
    // The messages themselves are shared too; only the list of them was copied.
    assert!(Rc::ptr_eq(
        &before.joined["ops"].messages[0],
        &after.joined["ops"].messages[0]
    ));
    // A message seen twice (history re-sent on a re-join) changes nothing at all.
    let again = Rc::clone(&after).reduce(Action::Server {
        msg: ServerMsg::Message(msg(3, "ops", "grace")),
        now: 1_000.0,
    });
    assert!(Rc::ptr_eq(&after, &again));
}

//! Managing rooms (`hub/rooms.rs`): who may create, rename, remove from and delete
//! them, direct conversations between exactly two people, and rooms, members and
//! history surviving a restart.

use super::*;

#[test]
fn creating_a_room_tells_everyone_and_refuses_duplicates() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    f.settle_rooms();
    ada.drain();
    bob.drain();
    f.hub.apply(1, create("ops"));
    assert!(ada.drain().is_empty(), "not before it is stored");
    f.flush();
    // The creator is answered once it is stored; everyone hears of it with the next
    // changes.
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::RoomsChanged { rooms, removed, created: Some(ops) }]
            if ops == "ops" && rooms.len() == 1 && rooms[0].name == "ops" && removed.is_empty()
    ));
    assert!(bob.drain().is_empty(), "collected, not sent yet");
    f.settle_rooms();
    for c in [&mut ada, &mut bob] {
        match c.drain().as_slice() {
            [
                ServerMsg::RoomsChanged {
                    rooms,
                    removed,
                    created: None,
                },
            ] => {
                let names: Vec<_> = rooms.iter().map(|r| r.name.as_str()).collect();
                assert_eq!(names, ["ops"]);
                assert!(removed.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    f.hub.apply(2, create("ops"));
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
    f.hub.apply(1, create("one"));
    f.hub.apply(1, create("two"));
    assert_eq!(error_code(&ada.drain()), Some(ErrorCode::TooManyRooms));
}

#[test]
fn guests_get_public_rooms_only() {
    let mut f = Fixture::new();
    let _ada = f.member(1, "ada");
    let mut guest = f.connect(2, 64);
    f.hub.apply(2, hello("Visitor"));
    guest.drain();
    f.hub.apply(
        2,
        Command::CreateRoom {
            room: room("hideout"),
            private: true,
        },
    );
    assert_eq!(error_code(&guest.drain()), Some(ErrorCode::Forbidden));
    f.hub.apply(
        2,
        Command::OpenDirect(Username::parse("ada").expect("username")),
    );
    assert_eq!(error_code(&guest.drain()), Some(ErrorCode::Forbidden));
    f.hub.apply(2, join("general", None));
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
    f.settle_rooms();
    ada.drain();
    bob.drain();
    carol.drain();
    f.hub.apply(
        1,
        Command::OpenDirect(Username::parse("bob").expect("username")),
    );
    let opened = ada.drain();
    let dm = match opened.as_slice() {
        [
            ServerMsg::RoomsChanged { rooms, .. },
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
    f.settle_rooms();
    let bob_sees = bob.drain();
    assert!(matches!(
        bob_sees.as_slice(),
        [ServerMsg::RoomsChanged { rooms, .. }]
            if rooms.iter().any(|r| r.name == dm && r.peer.as_ref().is_some_and(|p| p.user == "ada"))
    ));
    assert!(carol.drain().is_empty());
    f.say(&ada, &dm, "just us", "c1");
    f.hub.apply(2, join(&dm, None));
    assert!(matches!(
        bob.drain().as_slice(),
        [ServerMsg::Joined { history, .. }] if bodies_of(history) == ["just us"]
    ));
    // Opening it again from either side finds the same conversation.
    f.hub.apply(
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
    f.hub.apply(
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
    f.hub.apply(1, join(&plans, None));
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.flush();
    f.hub.apply(2, join(&plans, None));
    f.settle_rooms();
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
        f.hub.apply(2, request);
        assert_eq!(error_code(&bob.drain()), Some(ErrorCode::Forbidden));
    }
    f.hub.apply(
        1,
        Command::RenameRoom {
            room: room(&plans),
            title: room("schemes"),
        },
    );
    assert!(ada.drain().is_empty(), "not renamed before it is stored");
    f.settle_rooms();
    for c in [&mut ada, &mut bob] {
        let renamed = c.drain();
        assert!(
            !renamed.is_empty()
                && renamed.iter().all(|m| matches!(
                    m,
                    ServerMsg::RoomsChanged { rooms, .. }
                        if rooms.iter().any(|r| r.name == plans && r.title == "schemes")
                )),
            "{renamed:?}"
        );
    }
    f.hub.apply(
        1,
        Command::Remove {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    assert!(bob.drain().is_empty(), "not removed before it is stored");
    f.settle_rooms();
    let removed = bob.drain();
    assert!(removed.contains(&ServerMsg::Left {
        room: plans.clone()
    }));
    assert_eq!(changes(&removed).1, std::slice::from_ref(&plans));
    assert!(matches!(
        probe(&mut f, &mut bob, &plans).first(),
        Some(ServerMsg::Error {
            code: ErrorCode::UnknownRoom,
            ..
        })
    ));
    f.hub.apply(1, Command::DeleteRoom(room(&plans)));
    f.settle_rooms();
    let deleted = ada.drain();
    assert!(deleted.contains(&ServerMsg::Left {
        room: plans.clone()
    }));
    assert_eq!(changes(&deleted).1, [plans.clone(), plans.clone()]);
    f.hub.apply(1, Command::DeleteRoom(room("general")));
    assert_eq!(error_code(&ada.drain()), Some(ErrorCode::Forbidden));
    f.flush();
    let f = f.restart();
    assert!(!f.hub.rooms.contains_key(&plans), "deleted for good");
}

#[test]
fn rooms_members_and_history_survive_a_restart() {
    let mut f = Fixture::new();
    let ada = f.member(1, "ada");
    f.hub.apply(1, create("ops"));
    f.hub.apply(1, join("ops", None));
    f.say(&ada, "ops", "kept", "c1");
    f.hub.disconnect(1);
    f.flush();
    let mut f = f.restart();
    let mut bob = f.member(2, "bob");
    f.hub.apply(2, join("ops", None));
    match bob.drain().as_slice() {
        [
            ServerMsg::Joined {
                members,
                member_count,
                online,
                history,
                ..
            },
        ] => {
            // Members of a public room: those online are listed, everyone counted.
            assert_eq!(usernames(members), ["bob"]);
            assert_eq!(*member_count, 2);
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

/// The owner of `room` as the last room list in `msgs` shows it (`None` if none lists it).
fn owner_in(msgs: &[ServerMsg], room: &str) -> Option<Option<String>> {
    msgs.iter().rev().find_map(|m| match m {
        ServerMsg::Rooms { rooms, .. }
        | ServerMsg::Welcome { rooms, .. }
        | ServerMsg::RoomsChanged { rooms, .. } => rooms
            .iter()
            .find(|r| r.name == room)
            .map(|r| r.owner.clone()),
        _ => None,
    })
}

/// A guest's username (`~ada`) is free again once they go, for any guest to take: the
/// room a guest made must not become the next one's.
#[test]
fn a_room_a_guest_creates_has_no_owner_and_a_later_guest_of_that_name_gains_no_rights() {
    let mut f = Fixture::new();
    let mut first = f.connect(1, 64);
    f.hub.apply(1, hello("Ada"));
    first.drain();
    f.hub.apply(1, create("lobby"));
    f.flush();
    assert_eq!(owner_in(&first.drain(), "lobby"), Some(None));
    f.hub.disconnect(1);

    let mut second = f.connect(2, 64);
    f.hub.apply(2, hello("Ada"));
    let welcome = second.drain();
    assert!(
        matches!(welcome.first(), Some(ServerMsg::Welcome { you, .. }) if you.user == "~ada"),
        "{welcome:?}"
    );
    assert_eq!(owner_in(&welcome, "lobby"), Some(None));
    for request in [
        Command::RenameRoom {
            room: room("lobby"),
            title: room("mine"),
        },
        Command::DeleteRoom(room("lobby")),
    ] {
        f.hub.apply(2, request);
        assert_eq!(error_code(&second.drain()), Some(ErrorCode::Forbidden));
    }
    f.hub.apply(2, Command::ListRooms);
    let listed = second.drain();
    assert!(
        matches!(
            listed.as_slice(),
            [ServerMsg::Rooms { rooms, .. }]
                if rooms.iter().any(|r| r.name == "lobby" && r.title == "lobby" && r.owner.is_none())
        ),
        "{listed:?}"
    );

    // Administrators still manage it.
    let mut admin = f.connect_with(
        3,
        64,
        Identity::User {
            username: "root".into(),
            display_name: "Root".into(),
            admin: true,
            session: [3; 32],
            checked_at: Instant::now(),
        },
    );
    f.hub.apply(3, hello("root"));
    admin.drain();
    f.hub.apply(3, Command::DeleteRoom(room("lobby")));
    f.settle_rooms();
    assert_eq!(error_code(&admin.drain()), None);
    assert_eq!(changes(&second.drain()).1, ["lobby"]);
}

/// Rooms guests made before guests could own nothing were stored with the guest as owner:
/// they lose that owner when the server starts.
#[test]
fn a_stored_guest_owner_is_no_owner() {
    let mut f = Fixture::new();
    f.writer
        .try_submit(
            Write::CreateRoom {
                room: "lobby".into(),
                ts: 0,
                kind: RoomKind::Public,
                title: "lobby".into(),
                owner: Some("~ada".into()),
            },
            None,
        )
        .expect("writer queue");
    f.flush();
    let mut f = f.restart();
    let mut guest = f.connect(1, 64);
    f.hub.apply(1, hello("Ada"));
    assert_eq!(owner_in(&guest.drain(), "lobby"), Some(None));
    f.hub.apply(
        1,
        Command::RenameRoom {
            room: room("lobby"),
            title: room("mine"),
        },
    );
    assert_eq!(error_code(&guest.drain()), Some(ErrorCode::Forbidden));
}

/// A storm of room creations by many people: each session hears of them in at most one
/// frame per interval, not one frame (the whole list) per room created.
#[test]
fn a_storm_of_creations_reaches_each_session_once_per_interval() {
    let mut f = Fixture::new();
    let mut watchers: Vec<Client> = (1..=20).map(|i| f.member(i, &format!("w{i}"))).collect();
    f.settle_rooms();
    let t0 = Instant::now();
    f.hub.tick(t0);
    for w in &mut watchers {
        w.drain();
    }
    let interval = HubSettings::default().room_list_interval;
    // 300 guests create a room each, spread over 1.5 intervals; the hub thread ticks
    // after every event.
    let storm = 300;
    for n in 0..storm {
        let id = 1000 + n;
        let mut guest = f.connect(id, 64);
        f.hub.apply(id, hello(&format!("g{n}")));
        f.hub.apply(id, create(&format!("room-{n}")));
        assert_eq!(error_code(&guest.drain()), None);
        let at = t0 + interval * u32::try_from(n).expect("small") / 200;
        f.hub.tick(at);
    }
    f.hub.tick(t0 + interval * 2);
    for w in &mut watchers {
        let frames = w.drain();
        assert!(
            frames.len() <= 2,
            "{} frames in 2 intervals for {storm} rooms",
            frames.len()
        );
        let told: BTreeSet<String> = changed_names(&frames).into_iter().collect();
        assert_eq!(told.len(), storm as usize, "every new room, once");
    }
}

/// Changes to a private room reach its members and nobody else.
#[test]
fn private_room_changes_reach_only_its_members() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let mut carol = f.member(3, "carol");
    f.settle_rooms();
    for c in [&mut bob, &mut carol] {
        c.drain();
    }
    let plans = f.create_private(&mut ada, "plans");
    f.hub.apply(1, join(&plans, None));
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.settle_rooms();
    assert_eq!(changed_names(&bob.drain()), std::slice::from_ref(&plans));
    f.hub.apply(
        1,
        Command::RenameRoom {
            room: room(&plans),
            title: room("schemes"),
        },
    );
    f.settle_rooms();
    assert_eq!(changed_names(&bob.drain()), std::slice::from_ref(&plans));
    f.hub.apply(1, Command::DeleteRoom(room(&plans)));
    f.settle_rooms();
    assert_eq!(changes(&bob.drain()).1, std::slice::from_ref(&plans));
    assert!(ada.drain().contains(&ServerMsg::Left { room: plans }));
    assert!(carol.drain().is_empty(), "a non-member hears nothing of it");
}

#[test]
fn room_changes_are_rate_limited_per_person() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    let burst = HubSettings::default().room_changes.burst as usize;
    for n in 0..burst {
        f.hub.apply(1, create(&format!("r{n}")));
    }
    assert_eq!(error_code(&ada.drain()), None);
    f.hub.apply(1, create("one-too-many"));
    match ada.drain().as_slice() {
        [
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms: Some(ms),
                ..
            },
        ] => assert!(*ms > 0 && *ms <= 2_000, "{ms}"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!f.hub.rooms.contains_key("one-too-many"));
    // Someone else is not held up by it.
    f.hub.apply(2, create("bobs"));
    assert_eq!(error_code(&bob.drain()), None);
}

/// A removal goes to the writer even when its queue is full, and takes effect only once
/// stored: after a restart the removed member is still removed.
#[test]
fn a_removal_is_never_dropped_by_a_full_writer_queue_and_survives_a_restart() {
    let (mut f, controls) = Fixture::controlled(2);
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    f.flush();
    let plans = f.create_private(&mut ada, "plans");
    f.hub.apply(1, join(&plans, None));
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.flush();
    f.hub.apply(2, join(&plans, None));
    f.settle_rooms();
    ada.drain();
    bob.drain();

    let gate = controls.gate.lock().expect("gate");
    // The writer takes the first and waits in its commit; the queue fills behind it.
    let mut n = 0;
    loop {
        f.hub.apply(1, send(&plans, "filler", &format!("f{n}")));
        n += 1;
        if error_code(&ada.drain()) == Some(ErrorCode::Unavailable) {
            break;
        }
        assert!(n < 100, "the writer's queue never filled");
    }
    f.hub.apply(
        1,
        Command::Remove {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    assert_eq!(error_code(&ada.drain()), None, "accepted however full");
    assert!(
        f.hub.rooms[&plans].members.contains("bob"),
        "not applied before it is stored"
    );
    drop(gate);
    f.settle_rooms();
    assert!(bob.drain().contains(&ServerMsg::Left {
        room: plans.clone()
    }));
    assert!(!f.hub.rooms[&plans].members.contains("bob"));
    let f = f.restart();
    assert_eq!(
        f.hub.rooms[&plans].members.iter().collect::<Vec<_>>(),
        ["ada"],
        "still removed after a restart"
    );
}

/// A removal whose write fails is reported to the requester and changes nothing.
#[test]
fn a_room_that_cannot_be_stored_is_reported_and_undone() {
    let (mut f, controls) = Fixture::controlled(64);
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    f.flush();
    f.settle_rooms();
    ada.drain();
    bob.drain();
    controls
        .fail_creations
        .store(true, std::sync::atomic::Ordering::SeqCst);
    f.hub.apply(1, create("ops"));
    f.flush();
    assert!(
        matches!(
            ada.drain().as_slice(),
            [ServerMsg::Error { code: ErrorCode::Unavailable, room: Some(r), .. }] if r == "ops"
        ),
        "the creator hears it failed"
    );
    controls
        .fail_creations
        .store(false, std::sync::atomic::Ordering::SeqCst);
    f.hub.apply(1, create("ops"));
    f.flush();
    assert!(
        matches!(
            ada.drain().as_slice(),
            [ServerMsg::RoomsChanged { created: Some(r), .. }] if r == "ops"
        ),
        "nothing was left of the failed one: the retry creates it"
    );
}

#[test]
fn a_removal_that_cannot_be_stored_is_reported_and_not_applied() {
    let (mut f, controls) = Fixture::controlled(64);
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    f.flush();
    let plans = f.create_private(&mut ada, "plans");
    f.hub.apply(1, join(&plans, None));
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.flush();
    f.hub.apply(2, join(&plans, None));
    f.settle_rooms();
    ada.drain();
    bob.drain();
    controls
        .fail_removals
        .store(true, std::sync::atomic::Ordering::SeqCst);
    f.hub.apply(
        1,
        Command::Remove {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.settle_rooms();
    match ada.drain().as_slice() {
        [
            ServerMsg::Error {
                code: ErrorCode::Unavailable,
                room: Some(r),
                ..
            },
        ] => {
            assert_eq!(*r, plans);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(f.hub.rooms[&plans].members.contains("bob"));
    let bobs = bob.drain();
    assert!(
        !bobs.contains(&ServerMsg::Left {
            room: plans.clone()
        }),
        "{bobs:?}"
    );
    // Once storage works again, the same request goes through.
    controls
        .fail_removals
        .store(false, std::sync::atomic::Ordering::SeqCst);
    f.hub.apply(
        1,
        Command::Remove {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.settle_rooms();
    assert!(!f.hub.rooms[&plans].members.contains("bob"));
}

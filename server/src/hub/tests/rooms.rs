//! Managing rooms (`hub/rooms.rs`): who may create, rename, remove from and delete
//! them, direct conversations between exactly two people, and rooms, members and
//! history surviving a restart.

use super::*;

#[test]
fn creating_a_room_tells_everyone_and_refuses_duplicates() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    ada.drain();
    f.hub.apply(1, create("ops"));
    for c in [&mut ada, &mut bob] {
        match c.drain().as_slice() {
            [ServerMsg::Rooms { rooms, .. }] => {
                let names: Vec<_> = rooms.iter().map(|r| r.name.as_str()).collect();
                assert_eq!(names, ["general", "ops"]);
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
    ada.drain();
    bob.drain();
    f.hub.apply(
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
    f.hub.apply(2, join(&plans, None));
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
    for c in [&mut ada, &mut bob] {
        let renamed = c.drain();
        assert!(matches!(
            renamed.as_slice(),
            [ServerMsg::Rooms { rooms, .. }]
                if rooms.iter().any(|r| r.name == plans && r.title == "schemes")
        ));
    }
    f.hub.apply(
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
    f.hub.apply(1, Command::DeleteRoom(room(&plans)));
    let deleted = ada.drain();
    assert!(deleted.contains(&ServerMsg::Left {
        room: plans.clone()
    }));
    assert_eq!(room_names(&deleted), Some(vec!["general".to_owned()]));
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
            ServerMsg::Rooms { .. },
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
        ServerMsg::Rooms { rooms, .. } | ServerMsg::Welcome { rooms, .. } => rooms
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
    assert_eq!(error_code(&admin.drain()), None);
    assert_eq!(
        room_names(&second.drain()),
        Some(vec!["general".to_owned()])
    );
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

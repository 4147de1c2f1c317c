//! Joining, resuming, leaving and presence (`hub/membership.rs`): above all that a
//! resumed connection gets every message it missed exactly once, and that a person is
//! present once however many connections they have.

use super::*;

#[test]
fn a_connection_may_be_in_a_limited_number_of_rooms() {
    let settings = HubSettings {
        max_rooms_per_connection: 2,
        ..HubSettings::default()
    };
    let mut f = Fixture::with(settings, tempfile::tempdir().expect("tempdir"));
    let mut ada = f.member(1, "ada");
    for r in ["one", "two"] {
        f.hub.apply(1, create(r));
    }
    f.hub.apply(1, join("one", None));
    ada.drain();
    f.hub.apply(1, join("two", None));
    assert_eq!(error_code(&ada.drain()), Some(ErrorCode::TooManyRooms));
    // Re-joining a room it is in is not a new room.
    f.hub.apply(1, join("one", None));
    assert!(matches!(ada.drain().as_slice(), [ServerMsg::Joined { .. }]));
    f.hub.apply(1, Command::Leave(room("one")));
    f.hub.apply(1, join("two", None));
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
    f.hub.apply(2, join("general", None));
    let joined = bob.drain();
    assert!(matches!(
        joined.iter().find(|m| matches!(m, ServerMsg::Joined { .. })),
        Some(ServerMsg::Joined { online, members, .. })
            if online == &["ada", "bob"] && usernames(members) == ["ada", "bob"]
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
    f.hub.apply(2, Command::Leave(room("general")));
    assert!(matches!(
        bob.drain().as_slice(),
        [ServerMsg::Left { room }] if room == "general"
    ));
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::Presence {
            event: PresenceEvent::Left,
            ..
        }]
    ));
    f.hub.apply(2, join("general", None));
    ada.drain();
    f.hub.disconnect(2);
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::Presence { who, event: PresenceEvent::Left, .. }] if who.user == "bob"
    ));
}

/// A repeated `join` is cheap to send: it must not be answered with a page of history
/// each time (the connection has it already), nor announce the person again.
#[test]
fn joining_again_resends_state_but_not_history_nor_a_second_arrival() {
    let mut f = Fixture::new();
    let ada = f.member(1, "ada");
    for i in 1..=3 {
        f.say(&ada, "general", &format!("m{i}"), &format!("c{i}"));
    }
    let mut ada = ada;
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
    assert!(matches!(
        bob.drain().first(),
        Some(ServerMsg::Joined { history, .. }) if bodies_of(history) == ["m1", "m2", "m3"]
    ));
    ada.drain();
    f.hub.apply(2, join("general", None));
    match bob.drain().as_slice() {
        [
            ServerMsg::Joined {
                members,
                member_count: 2,
                online,
                history,
                ..
            },
        ] => {
            assert_eq!(usernames(members), ["ada", "bob"]);
            assert_eq!(online, &["ada", "bob"]);
            assert!(history.is_empty(), "history resent: {history:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(ada.drain().is_empty(), "no second arrival");
    // Asking with `after` still follows the resume rules: what is after it.
    f.hub.apply(2, join("general", Some(1)));
    assert!(matches!(
        bob.drain().as_slice(),
        [ServerMsg::Joined { history, .. }] if bodies_of(history) == ["m2", "m3"]
    ));
    assert!(ada.drain().is_empty());
    // And the connection is still live.
    f.say(&ada, "general", "m4", "c4");
    assert_eq!(bodies(&bob.drain()), ["m4"]);
}

#[test]
fn a_fresh_join_delivers_recent_history_oldest_first() {
    let mut f = Fixture::new();
    let ada = f.member(1, "ada");
    for i in 0..150 {
        f.hub
            .apply(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
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
            .apply(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    let mut bob = f.connect(2, 4096);
    f.hub.apply(2, hello("bob"));
    bob.drain();
    let mut got = Vec::new();
    let mut after = 5;
    loop {
        f.hub.apply(2, join("general", Some(after)));
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
fn two_tabs_of_one_person_arrive_and_leave_once() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob_tab1 = f.member(2, "bob");
    ada.drain();
    let mut bob_tab2 = f.connect_with(3, 64, user("bob", "Bob", 3));
    f.hub.apply(3, hello("bob"));
    f.hub.apply(3, join("general", None));
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
fn guests_are_members_only_while_they_are_there() {
    let mut f = Fixture::new();
    let _ada = f.member(1, "ada");
    let mut guest = f.connect(2, 64);
    f.hub.apply(2, hello("Visitor"));
    f.hub.apply(2, join("general", None));
    assert!(matches!(
        guest.drain().last(),
        Some(ServerMsg::Joined { members, .. }) if usernames(members) == ["ada", "~visitor"]
    ));
    f.hub.disconnect(2);
    let mut bob = f.member(3, "bob");
    f.hub.apply(3, join("general", None));
    assert!(matches!(
        bob.drain().last(),
        Some(ServerMsg::Joined { members, .. }) if usernames(members) == ["ada", "bob"]
    ));
    // Nor were they stored.
    f.flush();
    let mut f = f.restart();
    let mut carol = f.member(4, "carol");
    f.hub.apply(4, join("general", None));
    assert!(matches!(
        carol.drain().last(),
        Some(ServerMsg::Joined { members, member_count: 3, .. }) if usernames(members) == ["carol"]
    ));
}

/// A public room's members are everyone who ever joined it; `joined` lists only those
/// online and counts the rest, so its size does not grow with the room's history.
#[test]
fn joining_a_room_of_fifty_thousand_members_is_a_small_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = SqliteStore::open(dir.path(), Durability::Process).expect("store");
        let writes: Vec<Write> = (0..50_000)
            .map(|i| Write::AddMember {
                room: "general".into(),
                name: format!("member-number-{i:05}"),
            })
            .collect();
        store.apply(&writes).expect("members stored");
    }
    let mut f = Fixture::with(HubSettings::default(), dir);
    let _ada = f.member(1, "ada");
    let bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
    let frame = bob.rx.try_recv().expect("joined");
    let joined: ServerMsg = serde_json::from_str(frame.as_str()).expect("server JSON");
    match joined {
        ServerMsg::Joined {
            members,
            member_count,
            online,
            ..
        } => {
            assert_eq!(usernames(&members), ["ada", "bob"]);
            assert_eq!(online, ["ada", "bob"]);
            assert_eq!(member_count, 50_002);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(frame.len() < 1024, "joined is {} bytes", frame.len());
}

/// The room list marks the rooms a person belongs to, and every connection of theirs hears
/// when that changes, so each tab and device can follow all of them.
#[test]
fn every_session_of_a_person_learns_which_rooms_are_theirs() {
    let mut f = Fixture::new();
    let mut dan = f.member(1, "dan");
    let mut dans_tab = f.member(2, "dan");
    f.hub.apply(1, create("ops"));
    dan.drain();
    dans_tab.drain();
    let theirs = |msgs: &[ServerMsg]| -> Option<bool> {
        msgs.iter().rev().find_map(|m| match m {
            ServerMsg::RoomsChanged { rooms, .. } => {
                rooms.iter().find(|r| r.name == "ops").map(|r| r.member)
            }
            _ => None,
        })
    };

    f.hub.apply(1, join("ops", None));
    f.settle_rooms();
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
    f.hub.apply(2, join("ops", None));
    f.settle_rooms();
    assert_eq!(theirs(&dans_tab.drain()), None);
    assert_eq!(theirs(&dan.drain()), None);

    // A fresh connection (a reload, another device) sees it in its welcome.
    let mut dans_phone = f.connect_with(3, 8192, user("dan", "Dan", 3));
    f.hub.apply(3, hello("dan"));
    let welcome = dans_phone.drain();
    let listed = welcome.iter().find_map(|m| match m {
        ServerMsg::Welcome { rooms, .. } => {
            rooms.iter().find(|r| r.name == "ops").map(|r| r.member)
        }
        _ => None,
    });
    assert_eq!(listed, Some(true));

    // Leaving ends the membership on every device.
    f.hub.apply(1, Command::Leave(room("ops")));
    f.settle_rooms();
    assert_eq!(theirs(&dans_phone.drain()), Some(false));
    assert_eq!(theirs(&dan.drain()), Some(false));
    assert_eq!(theirs(&dans_tab.drain()), Some(false));

    // Someone else's joins are not news to Dan.
    let mut eve = f.member(4, "eve");
    f.hub.apply(4, join("ops", None));
    f.settle_rooms();
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
    f.hub.apply(1, join(&id, None));
    for user in ["bob", "cy"] {
        f.hub.apply(
            1,
            Command::Invite {
                room: room(&id),
                user: Username::parse(user).expect("username"),
            },
        );
    }
    // Cy is there now, Bob is not: the room goes to whoever can act on it at once.
    f.flush();
    f.hub.apply(3, join(&id, None));
    for c in [&mut ada, &mut bob, &mut cy] {
        c.drain();
    }
    f.hub.apply(1, Command::Leave(room(&id)));
    f.settle_rooms();
    let owner_in = |msgs: &[ServerMsg]| {
        msgs.iter().rev().find_map(|m| match m {
            ServerMsg::Rooms { rooms } | ServerMsg::RoomsChanged { rooms, .. } => {
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
    f.hub.apply(
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
    f.hub.apply(3, Command::ListRooms);
    assert_eq!(owner_in(&cy.drain()), Some(Some("cy".to_owned())));
}

/// Nobody could ever see, join, manage or delete a private room without members: it goes
/// with its last member, messages and all, and frees its place under the room cap.
#[test]
fn a_private_room_goes_with_its_last_member() {
    // #general and one more.
    let settings = HubSettings {
        max_rooms: 2,
        ..HubSettings::default()
    };
    let mut f = Fixture::with(settings, tempfile::tempdir().expect("tempdir"));
    let mut ada = f.member(1, "ada");
    let mut adas_tab = f.member(2, "ada");
    let id = f.create_private(&mut ada, "secret");
    f.hub.apply(1, join(&id, None));
    f.hub.apply(2, join(&id, None));
    f.say(&ada, &id, "for nobody", "c1");
    ada.drain();
    adas_tab.drain();

    f.hub.apply(1, Command::Leave(room(&id)));
    f.settle_rooms();
    for c in [&mut ada, &mut adas_tab] {
        let left = c.drain();
        assert!(
            left.contains(&ServerMsg::Left { room: id.clone() }),
            "{left:?}"
        );
        assert_eq!(changes(&left).1, std::slice::from_ref(&id));
    }
    assert!(!f.hub.rooms.contains_key(&id), "the room is gone");
    // Its place under the cap is free again.
    f.hub.apply(
        1,
        Command::CreateRoom {
            room: room("another"),
            private: true,
        },
    );
    let created = ada.drain();
    assert_eq!(error_code(&created), None, "{created:?}");
    // Gone for good, messages and all.
    f.flush();
    let mut f = f.restart();
    assert!(!f.hub.rooms.contains_key(&id), "deleted for good");
    assert_eq!(f.hub.store.before(&id, u64::MAX, 10).expect("read"), []);
}

/// A private room its last member left before such rooms were deleted goes when the
/// server starts.
#[test]
fn an_empty_private_room_from_before_is_deleted_at_start() {
    let mut f = Fixture::new();
    for write in [
        Write::CreateRoom {
            room: "_pforgotten".into(),
            ts: 0,
            kind: RoomKind::Private,
            title: "forgotten".into(),
            owner: Some("ada".into()),
        },
        Write::Append(crate::store::NewMessage {
            room: "_pforgotten".into(),
            from: "ada".into(),
            name: "Ada".into(),
            body: "lost".into(),
            client_id: "c1".into(),
            ts: 0,
            reply_to: None,
            mentions: Vec::new(),
            files: Vec::new(),
        }),
    ] {
        f.writer.try_submit(write, None).expect("writer queue");
    }
    f.flush();
    let stored = |f: &mut Fixture| {
        let rooms = f.hub.store.rooms().expect("rooms");
        rooms.iter().any(|r| r.name == "_pforgotten")
    };
    assert!(stored(&mut f));
    let mut f = f.restart();
    assert!(!f.hub.rooms.contains_key("_pforgotten"));
    f.flush();
    assert!(!stored(&mut f), "deleted from the store");
    assert_eq!(
        f.hub
            .store
            .before("_pforgotten", u64::MAX, 10)
            .expect("read"),
        []
    );
}

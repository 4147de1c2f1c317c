//! Changes to messages, read markers and mutes (`hub/changes.rs`): who may change what,
//! acknowledged and delivered once committed, each with its own place in the room's
//! log; resumed like messages.

use confab_shared::{Change, ChangeKind};

use super::*;

fn change(room_name: &str, seq: u64, client_id: &str, change: MessageChange) -> Command {
    Command::Change {
        room: room(room_name),
        seq,
        client_id: ClientId::parse(client_id).expect("client id"),
        change,
    }
}

fn edit(seq: u64, client_id: &str, body: &str) -> Command {
    change(
        "general",
        seq,
        client_id,
        MessageChange::Edit(Body::parse(body).expect("body")),
    )
}

fn react(seq: u64, client_id: &str, emoji: &str) -> Command {
    change(
        "general",
        seq,
        client_id,
        MessageChange::React(Emoji::parse(emoji).expect("emoji")),
    )
}

fn changes_in(msgs: &[ServerMsg]) -> Vec<&Change> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Changed(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn acks(msgs: &[ServerMsg]) -> Vec<(&str, u64)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Ack { client_id, seq, .. } => Some((client_id.as_str(), *seq)),
            _ => None,
        })
        .collect()
}

fn admin(username: &str, conn: ConnId) -> Identity {
    match user(username, &capitalised(username), conn) {
        Identity::User {
            username,
            display_name,
            session,
            checked_at,
            ..
        } => Identity::User {
            username,
            display_name,
            admin: true,
            session,
            checked_at,
        },
        Identity::Guest => Identity::Guest,
    }
}

#[test]
fn only_the_author_edits_and_everyone_sees_the_edit_once_committed() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    f.say(&ada, "general", "helo", "m1");
    ada.drain();
    bob.drain();
    f.hub.apply(2, edit(1, "e1", "bob was here"));
    f.hub.apply(1, edit(1, "e2", "hello"));
    assert!(ada.drain().is_empty(), "nothing before the commit");
    f.flush();
    let bob_saw = bob.drain();
    assert_eq!(error_code(&bob_saw), Some(ErrorCode::Forbidden));
    assert_eq!(changes_in(&bob_saw).len(), 1, "and the author's edit");
    let seen = ada.drain();
    assert_eq!(acks(&seen), [("e2", 2)]);
    match changes_in(&seen).as_slice() {
        [c] => assert_eq!(
            (c.seq, c.target, c.by.as_str(), &c.change),
            (
                2,
                1,
                "ada",
                &ChangeKind::Edited {
                    body: "hello".into()
                }
            )
        ),
        other => panic!("unexpected {other:?}"),
    }
    // A repeat of the edit (its ack was lost) is acknowledged with the original seq and
    // delivered to nobody again.
    f.hub.apply(1, edit(1, "e2", "hello"));
    f.flush();
    let again = ada.drain();
    assert_eq!(acks(&again), [("e2", 2)]);
    assert!(changes_in(&again).is_empty() && bob.drain().is_empty());
    // Someone joining now reads the message as it is.
    let mut cy = f.member(3, "cy");
    f.hub.apply(3, join("general", Some(0)));
    let joined = cy.drain();
    let history = joined.iter().find_map(|m| match m {
        ServerMsg::Joined {
            history, through, ..
        } => Some((history.clone(), *through)),
        _ => None,
    });
    let (history, through) = history.expect("joined");
    assert_eq!(through, 2);
    assert_eq!(
        (
            history[0].body.as_str(),
            history[0].edited.is_some(),
            history[0].rev
        ),
        ("hello", true, 2)
    );
}

#[test]
fn the_owner_or_an_admin_deletes_any_message_others_only_their_own() {
    let mut f = Fixture::new();
    let mut ada = f.signed_in(1, "ada");
    let mut bob = f.signed_in(2, "bob");
    let owner_room = f.create_private(&mut ada, "plans");
    f.hub.apply(1, join(&owner_room, None));
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&owner_room),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.settle_rooms();
    f.hub.apply(2, join(&owner_room, None));
    f.say(&bob, &owner_room, "bob's", "b1");
    f.say(&ada, &owner_room, "ada's", "a1");
    ada.drain();
    bob.drain();
    let delete = |seq, id: &str| change(&owner_room, seq, id, MessageChange::Delete);
    f.hub.apply(2, delete(2, "d1"));
    f.flush();
    assert_eq!(
        error_code(&bob.drain()),
        Some(ErrorCode::Forbidden),
        "not bob's"
    );
    f.hub.apply(1, delete(1, "d2"));
    f.flush();
    assert_eq!(acks(&ada.drain()), [("d2", 3)], "the owner may");
    match changes_in(&bob.drain()).as_slice() {
        [c] => assert_eq!((c.target, &c.change), (1, &ChangeKind::Deleted)),
        other => panic!("unexpected {other:?}"),
    }
    // An administrator may too, in a room of which they are not the owner.
    let mut root = f.connect_with(5, 64, admin("root", 5));
    f.hub.user_added("root".into(), "Root".into());
    f.hub.apply(5, hello("root"));
    f.hub.apply(5, join("general", None));
    f.hub.apply(1, join("general", None));
    f.say(&ada, "general", "in general", "a2");
    root.drain();
    f.hub
        .apply(5, change("general", 1, "d3", MessageChange::Delete));
    f.flush();
    assert_eq!(acks(&root.drain()), [("d3", 2)]);
}

#[test]
fn guests_react_but_never_edit_or_delete() {
    let mut f = Fixture::new();
    let mut guest = f.connect(1, 64);
    f.hub.apply(1, hello("Visitor"));
    f.hub.apply(1, join("general", None));
    f.say(&guest, "general", "hi", "g1");
    guest.drain();
    f.hub.apply(1, edit(1, "e1", "hello"));
    f.hub
        .apply(1, change("general", 1, "d1", MessageChange::Delete));
    f.hub.apply(1, react(1, "r1", "\u{1F44B}"));
    f.flush();
    let got = guest.drain();
    let refused: Vec<_> = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Error {
                code, client_id, ..
            } => Some((*code, client_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [
            (ErrorCode::Forbidden, Some("e1".to_owned())),
            (ErrorCode::Forbidden, Some("d1".to_owned()))
        ]
    );
    assert_eq!(acks(&got), [("r1", 2)]);
}

#[test]
fn a_reaction_is_one_per_person_and_emoji_and_can_be_taken_back() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    f.say(&ada, "general", "ship it?", "m1");
    ada.drain();
    bob.drain();
    f.hub.apply(2, react(1, "r1", "\u{1F44D}"));
    f.hub.apply(2, react(1, "r2", "\u{1F44D}"));
    f.hub.apply(
        2,
        change(
            "general",
            1,
            "u1",
            MessageChange::Unreact(Emoji::parse("\u{1F44D}").expect("emoji")),
        ),
    );
    f.hub.apply(2, react(9, "r3", "\u{1F44D}"));
    f.flush();
    let got = bob.drain();
    assert_eq!(acks(&got), [("r1", 2), ("r2", 2), ("u1", 3)]);
    assert_eq!(error_code(&got), Some(ErrorCode::UnknownMessage));
    let kinds: Vec<_> = changes_in(&ada.drain())
        .into_iter()
        .map(|c| (c.seq, c.change.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                2,
                ChangeKind::Reacted {
                    emoji: "\u{1F44D}".into()
                }
            ),
            (
                3,
                ChangeKind::Unreacted {
                    emoji: "\u{1F44D}".into()
                }
            )
        ]
    );
}

#[test]
fn edits_are_rate_limited_per_person() {
    let mut f = Fixture::with(
        HubSettings {
            edits: crate::ratelimit::RateLimit {
                per_sec: 0.001,
                burst: 2.0,
            },
            ..HubSettings::default()
        },
        tempfile::tempdir().expect("tempdir"),
    );
    let mut ada = f.member(1, "ada");
    let _second_tab = f.member(2, "ada");
    f.say(&ada, "general", "v0", "m1");
    ada.drain();
    f.hub.apply(1, edit(1, "e1", "v1"));
    f.hub.apply(2, edit(1, "e2", "v2"));
    f.hub.apply(1, edit(1, "e3", "v3"));
    f.flush();
    let got = ada.drain();
    let limited = got.iter().find_map(|m| match m {
        ServerMsg::Error {
            code: ErrorCode::RateLimited,
            client_id,
            retry_after_ms,
            ..
        } => Some((client_id.clone(), retry_after_ms.is_some())),
        _ => None,
    });
    assert_eq!(limited, Some((Some("e3".to_owned()), true)), "{got:?}");
}

#[test]
fn a_read_marker_reaches_every_session_of_its_person_and_counts_start_there() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut ada_phone = f.member(2, "ada");
    let mut bob = f.member(3, "bob");
    f.flush();
    f.say(&bob, "general", "hi @ada", "b1");
    f.say(&bob, "general", "and hi all", "b2");
    f.say(&ada, "general", "hello", "a1");
    ada.drain();
    ada_phone.drain();
    bob.drain();
    f.hub.apply(
        1,
        Command::MarkRead {
            room: room("general"),
            seq: 99,
        },
    );
    f.flush();
    for c in [&mut ada, &mut ada_phone] {
        assert!(
            c.drain().contains(&ServerMsg::Read {
                room: "general".into(),
                seq: 3
            }),
            "clamped to the room's last seq, told to every session"
        );
    }
    assert!(bob.drain().is_empty(), "nobody else's business");
    f.say(&bob, "general", "one more, @ada", "b3");
    let mut tablet = f.signed_in(4, "ada");
    f.hub.apply(4, join("general", None));
    let counts = tablet.drain().iter().find_map(|m| match m {
        ServerMsg::Joined {
            read,
            unread,
            mentions,
            through,
            ..
        } => Some((*read, *unread, *mentions, *through)),
        _ => None,
    });
    assert_eq!(counts, Some((3, 1, 1, 4)));
}

#[test]
fn a_mention_counts_only_for_those_who_may_see_the_room() {
    let mut f = Fixture::new();
    let mut ada = f.signed_in(1, "ada");
    let _bob = f.member(2, "bob");
    let plans = f.create_private(&mut ada, "plans");
    f.hub.apply(1, join(&plans, None));
    f.settle_rooms();
    ada.drain();
    f.say(&ada, &plans, "@bob is not here to see this", "a1");
    // Bob, invited later, has read everything said before he came.
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&plans),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.settle_rooms();
    let mut bob_tab = f.signed_in(3, "bob");
    f.hub.apply(3, join(&plans, None));
    let counts = bob_tab.drain().iter().find_map(|m| match m {
        ServerMsg::Joined {
            unread, mentions, ..
        } => Some((*unread, *mentions)),
        _ => None,
    });
    assert_eq!(counts, Some((0, 0)));
    assert!(f.hub.mentioned(&plans, "@bob @zed @ada", "ada") == ["bob"]);
}

#[test]
fn muting_reaches_every_session_and_survives_a_restart() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut phone = f.member(2, "ada");
    f.hub.apply(
        1,
        Command::Mute {
            room: room("general"),
            muted: true,
        },
    );
    f.flush();
    for c in [&mut ada, &mut phone] {
        let (rooms, _) = changes(&c.drain());
        assert!(
            rooms.iter().any(|r| r.name == "general" && r.muted),
            "{rooms:?}"
        );
    }
    let epoch = f.hub.epoch.clone();
    let mut f = f.restart();
    assert_eq!(f.hub.epoch, epoch, "the same store, the same epoch");
    let mut ada = f.signed_in(1, "ada");
    f.hub.apply(1, Command::ListRooms);
    let listed = ada.drain().iter().find_map(|m| match m {
        ServerMsg::Rooms { rooms } => Some(rooms.clone()),
        _ => None,
    });
    assert!(
        listed
            .expect("rooms")
            .iter()
            .any(|r| r.name == "general" && r.muted)
    );
}

#[test]
fn a_resume_brings_what_changed_while_away_once_in_its_current_state() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    f.say(&ada, "general", "one", "a1");
    f.say(&ada, "general", "two", "a2");
    bob.drain();
    // Bob goes; meanwhile Ada edits, reacts, deletes and writes.
    f.hub.disconnect(2);
    f.hub.apply(1, edit(1, "e1", "one!"));
    f.hub.apply(1, react(2, "r1", "\u{1F389}"));
    f.hub
        .apply(1, change("general", 2, "r2", MessageChange::Delete));
    f.flush();
    f.say(&ada, "general", "three", "a3");
    ada.drain();
    let mut bob = f.signed_in(3, "bob");
    f.hub.apply(3, join("general", Some(2)));
    let got = bob.drain();
    let (history, through) = got
        .iter()
        .find_map(|m| match m {
            ServerMsg::Joined {
                history, through, ..
            } => Some((history.clone(), *through)),
            _ => None,
        })
        .expect("joined");
    assert_eq!(through, 6);
    let shown: Vec<(u64, &str, bool)> = history
        .iter()
        .map(|m| (m.seq, m.body.as_str(), m.deleted))
        .collect();
    assert_eq!(
        shown,
        [(1, "one!", false), (2, "", true), (6, "three", false)]
    );
}

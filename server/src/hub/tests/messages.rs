//! Messages (`hub/messages.rs`): acknowledged and delivered only once committed, and
//! once however often they are re-sent; scrolling back; typing, throttled.

use super::*;

#[test]
fn a_message_is_acked_then_delivered_only_after_commit() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    let mut bob = f.member(2, "bob");
    ada.drain();
    f.hub.apply(1, send("general", "  hi bob ", "c1"));
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
fn scrolling_back_pages_older_messages() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    for i in 1..=30 {
        f.hub
            .apply(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    ada.drain();
    let fetch = |before| Command::FetchHistory {
        room: room("general"),
        before,
        limit: 20,
    };
    f.hub.apply(1, fetch(31));
    match ada.drain().as_slice() {
        [ServerMsg::History { messages, more, .. }] => {
            assert_eq!(seqs(messages), (11..=30).collect::<Vec<_>>());
            assert!(more);
        }
        other => panic!("unexpected {other:?}"),
    }
    f.hub.apply(1, fetch(11));
    match ada.drain().as_slice() {
        [ServerMsg::History { messages, more, .. }] => {
            assert_eq!(seqs(messages), (1..=10).collect::<Vec<_>>());
            assert!(!more);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Opening a room far back (a search result): the messages around one, in their current
/// state, with whether there are more on each side; for members of the room only.
#[test]
fn the_messages_around_one_come_with_what_lies_beyond() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    for i in 1..=120 {
        f.hub
            .apply(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    f.hub.apply(
        1,
        Command::Change {
            room: room("general"),
            seq: 60,
            client_id: ClientId::parse("e1").expect("client id"),
            change: MessageChange::Edit(Body::parse("m60, edited").expect("body")),
        },
    );
    f.flush();
    ada.drain();
    let around = |seq| Command::FetchAround {
        room: room("general"),
        seq,
    };
    f.hub.apply(1, around(60));
    match ada.drain().as_slice() {
        [
            ServerMsg::Around {
                room,
                seq: 60,
                messages,
                older: true,
                newer: true,
            },
        ] => {
            assert_eq!(room, "general");
            assert_eq!(seqs(messages), (10..=110).collect::<Vec<_>>());
            assert_eq!(messages[50].body, "m60, edited", "as it is now");
        }
        other => panic!("unexpected {other:?}"),
    }
    f.hub.apply(1, around(100));
    match ada.drain().as_slice() {
        [
            ServerMsg::Around {
                messages,
                older: true,
                newer: false,
                ..
            },
        ] => assert_eq!(seqs(messages), (50..=120).collect::<Vec<_>>()),
        other => panic!("unexpected {other:?}"),
    }
    // Someone who has not joined is told to, like for history.
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, around(60));
    assert_eq!(error_code(&bob.drain()), Some(ErrorCode::NotInRoom));
}

#[test]
fn sends_are_refused_as_unavailable_once_storage_is_gone() {
    let mut f = Fixture::new();
    let mut ada = f.member(1, "ada");
    f.hub.stop();
    f.hub.apply(1, send("general", "lost?", "c1"));
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
    f.hub.apply(1, Command::Typing(room("general")));
    f.hub.apply(1, Command::Typing(room("general")));
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
    f.hub.apply(1, Command::Typing(room("general")));
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
        f.hub.apply(1, create(r));
    }
    f.flush();
    for r in ["one", "two"] {
        f.hub.apply(1, join(r, None));
        f.hub.apply(2, join(r, None));
    }
    ada.drain();
    bob.drain();
    for r in ["general", "one", "two"] {
        f.hub.apply(1, Command::Typing(room(r)));
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

//! History reads off the hub's thread (`hub/reads.rs`): what arrives while a join's read
//! is in flight reaches the joining connection after the reply, exactly once, and a
//! connection that goes, leaves or loses the room meanwhile gets no history.

use super::*;

/// Bob's frames: the reply first, then the messages kept for him, none twice.
#[test]
fn messages_committed_during_a_join_read_follow_joined_once_and_in_order() {
    let mut f = Fixture::held(HubSettings::default());
    let ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    assert_eq!(f.answer_reads(), 1);
    for i in 1..=3 {
        f.say(&ada, "general", &format!("m{i}"), &format!("c{i}"));
    }
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
    // The read is in flight: m4 and m5 are committed and go out live meanwhile.
    f.say(&ada, "general", "m4", "c4");
    f.say(&ada, "general", "m5", "c5");
    assert!(bob.drain().is_empty(), "nothing before the reply");
    assert_eq!(f.answer_reads(), 1);
    let got = bob.drain();
    match got.as_slice() {
        [ServerMsg::Joined { history, .. }, rest @ ..] => {
            assert_eq!(bodies_of(history), ["m1", "m2", "m3"]);
            assert_eq!(bodies(rest), ["m4", "m5"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    f.say(&ada, "general", "m6", "c6");
    assert_eq!(bodies(&bob.drain()), ["m6"], "live from here on");
}

/// A connection already live that resumes with `after` gets nothing live ahead of its
/// reply, and a message both read and kept arrives once.
#[test]
fn a_live_connection_resuming_gets_the_live_messages_after_its_reply() {
    let mut f = Fixture::held(HubSettings::default());
    let ada = f.signed_in(1, "ada");
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(1, join("general", None));
    f.hub.apply(2, join("general", None));
    f.answer_reads();
    bob.drain();
    for i in 1..=4 {
        f.say(&ada, "general", &format!("m{i}"), &format!("c{i}"));
    }
    bob.drain();
    f.hub.apply(2, join("general", Some(1)));
    f.say(&ada, "general", "m5", "c5");
    assert!(bob.drain().is_empty(), "m5 waits for the reply");
    f.answer_reads();
    let got = bob.drain();
    match got.as_slice() {
        [ServerMsg::Joined { history, .. }, rest @ ..] => {
            assert_eq!(bodies_of(history), ["m2", "m3", "m4"]);
            assert_eq!(bodies(rest), ["m5"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// A resume still behind after its page gets `replay` alone; what was kept is dropped,
/// since the next page holds it, and the pages end with every message exactly once.
#[test]
fn a_replay_page_during_live_traffic_loses_and_repeats_nothing() {
    let mut f = Fixture::held(HubSettings::default());
    let ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    f.answer_reads();
    let total = limits::REPLAY_PAGE as u64 + 20;
    for i in 1..=total {
        f.hub
            .apply(1, send("general", &format!("m{i}"), &format!("c{i}")));
    }
    f.flush();
    let mut bob = f.signed_in(2, "bob");
    let mut got = Vec::new();
    let mut after = 0;
    let mut live = 0;
    loop {
        f.hub.apply(2, join("general", Some(after)));
        live += 1;
        f.say(&ada, "general", "during", &format!("live-{live}"));
        f.answer_reads();
        let msgs = bob.drain();
        match msgs.as_slice() {
            [ServerMsg::Replay { messages, .. }] => {
                got.extend(seqs(messages));
                after = messages.last().expect("non-empty page").seq;
            }
            [ServerMsg::Joined { history, .. }, rest @ ..] => {
                got.extend(seqs(history));
                got.extend(rest.iter().filter_map(|m| match m {
                    ServerMsg::Message(m) => Some(m.seq),
                    _ => None,
                }));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<u64> = (1..=total + live).collect();
    assert_eq!(got, expected, "every message exactly once, in order");
}

#[test]
fn a_connection_that_goes_during_its_read_is_forgotten() {
    let mut f = Fixture::held(HubSettings::default());
    let mut ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    f.answer_reads();
    ada.drain();
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
    f.hub.disconnect(2);
    f.say(&ada, "general", "m1", "c1");
    assert_eq!(f.answer_reads(), 1);
    assert!(bob.drain().is_empty());
    assert!(f.hub.rooms["general"].reading.is_empty(), "nothing kept");
    assert!(!f.hub.rooms["general"].online.contains(&2));
    assert_eq!(
        bodies(&ada.drain()),
        ["m1"],
        "no arrival nor departure of bob"
    );
}

#[test]
fn leaving_during_the_read_takes_the_join_back() {
    let mut f = Fixture::held(HubSettings::default());
    let ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    f.answer_reads();
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
    f.hub.apply(2, Command::Leave(room("general")));
    assert!(matches!(bob.drain().as_slice(), [ServerMsg::Left { room }] if room == "general"));
    f.say(&ada, "general", "m1", "c1");
    f.answer_reads();
    assert!(
        bob.drain().is_empty(),
        "no joined, no message after leaving"
    );
    assert!(!f.hub.rooms["general"].online.contains(&2));
}

#[test]
fn a_member_removed_during_the_read_gets_no_history() {
    let mut f = Fixture::held(HubSettings::default());
    let mut ada = f.signed_in(1, "ada");
    let mut bob = f.signed_in(2, "bob");
    let id = f.create_private(&mut ada, "secret");
    f.hub.apply(1, join(&id, None));
    f.answer_reads();
    f.hub.apply(
        1,
        Command::Invite {
            room: room(&id),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.say(&ada, &id, "before", "c1");
    bob.drain();
    f.hub.apply(2, join(&id, None));
    f.hub.apply(
        1,
        Command::Remove {
            room: room(&id),
            user: Username::parse("bob").expect("username"),
        },
    );
    f.say(&ada, &id, "after", "c2");
    f.answer_reads();
    let got = bob.drain();
    assert!(
        !got.iter()
            .any(|m| matches!(m, ServerMsg::Joined { .. } | ServerMsg::Message(_))),
        "{got:?}"
    );
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Left { .. })));
}

#[test]
fn a_room_deleted_during_the_read_is_unknown() {
    let mut f = Fixture::held(HubSettings::default());
    let mut ada = f.signed_in(1, "ada");
    f.hub.apply(1, create("ops"));
    ada.drain();
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("ops", None));
    f.hub.apply(1, Command::DeleteRoom(room("ops")));
    f.flush();
    bob.drain();
    f.answer_reads();
    let got = bob.drain();
    assert_eq!(error_code(&got), Some(ErrorCode::UnknownRoom), "{got:?}");
    assert!(!got.iter().any(|m| matches!(m, ServerMsg::Joined { .. })));
}

#[test]
fn joining_again_during_the_read_answers_once() {
    let mut f = Fixture::held(HubSettings::default());
    let ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    f.answer_reads();
    f.say(&ada, "general", "m1", "c1");
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
    f.say(&ada, "general", "m2", "c2");
    f.hub.apply(2, join("general", Some(0)));
    f.say(&ada, "general", "m3", "c3");
    assert_eq!(f.answer_reads(), 2);
    let got = bob.drain();
    match got.as_slice() {
        [ServerMsg::Joined { history, .. }, rest @ ..] => {
            assert_eq!(bodies_of(history), ["m1", "m2"]);
            assert_eq!(bodies(rest), ["m3"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// What is kept for a joining connection is bounded like its queue: past the bound it is
/// closed as a slow consumer.
#[test]
fn a_join_whose_kept_messages_overflow_is_closed_as_slow() {
    let settings = HubSettings {
        read_buffer: 2,
        ..HubSettings::default()
    };
    let mut f = Fixture::held(settings);
    let ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    f.answer_reads();
    let bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
    for i in 1..=3 {
        f.say(&ada, "general", &format!("m{i}"), &format!("c{i}"));
    }
    assert_eq!(bob.close_code(), Some(close::SLOW_CONSUMER));
    assert!(f.hub.rooms["general"].reading.is_empty());
    f.answer_reads();
}

/// Scrolling back is read off the hub's thread too, and answered if the connection is
/// still in the room.
#[test]
fn history_is_answered_after_the_read() {
    let mut f = Fixture::held(HubSettings::default());
    let mut ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    f.answer_reads();
    for i in 1..=3 {
        f.say(&ada, "general", &format!("m{i}"), &format!("c{i}"));
    }
    ada.drain();
    let fetch = Command::FetchHistory {
        room: room("general"),
        before: 3,
        limit: 10,
    };
    f.hub.apply(1, fetch.clone());
    assert!(ada.drain().is_empty());
    f.answer_reads();
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::History { messages, more: false, .. }] if bodies_of(messages) == ["m1", "m2"]
    ));
    f.hub.apply(1, fetch);
    f.hub.apply(1, Command::Leave(room("general")));
    ada.drain();
    f.answer_reads();
    assert_eq!(error_code(&ada.drain()), Some(ErrorCode::NotInRoom));
}

/// The real path: reads answered by the pool's threads, each on its own connection, and
/// a read that panics is a failed read, not a dead thread.
#[test]
fn the_pool_reads_on_its_own_threads_and_survives_a_panicking_read() {
    let mut f = Fixture::new();
    let ada = f.member(1, "ada");
    f.say(&ada, "general", "m1", "c1");
    let reader = SqliteStore::open_reader(f.dir.path(), Durability::Process).expect("reader");
    let stores: Vec<Box<dyn Store>> = vec![Box::new(TestStore {
        // Reads of one room panic: a bug in a reader thread.
        inner: reader,
        hook: |room: &str| assert_ne!(room, "boom", "a bug reading history"),
        controls: Controls::default(),
    })];
    let (tx, answers) = std_mpsc::channel();
    let pool = ReadPool::spawn(stores, 4, move |done| {
        let thread = std::thread::current().name().map(str::to_owned);
        let Done::Read(done) = done else {
            panic!("a read's answer, got {done:?}")
        };
        let _ = tx.send((thread, done));
    })
    .expect("pool");
    let read = |ticket, room_name: &str| Read {
        ticket,
        conn: 1,
        room: room(room_name),
        until: 1,
        kind: crate::hub::reads::ReadKind::Recent { limit: 10 },
        reader: None,
    };
    pool.try_submit(read(1, "general")).expect("queued");
    let (thread, done) = answers
        .recv_timeout(Duration::from_secs(10))
        .expect("answer");
    assert_eq!(thread.as_deref(), Some("confab-read-0"));
    assert_eq!(
        done.result
            .map(|found| bodies_of(&found.page.messages).join(",")),
        Ok("m1".into())
    );
    pool.try_submit(read(2, "boom")).expect("queued");
    let (_, done) = answers
        .recv_timeout(Duration::from_secs(10))
        .expect("answer");
    assert!(
        matches!(&done.result, Err(e) if e.contains("panicked")),
        "{:?}",
        done.result
    );
    pool.try_submit(read(3, "general")).expect("queued");
    let (_, done) = answers
        .recv_timeout(Duration::from_secs(10))
        .expect("answer");
    assert_eq!(done.read.ticket, 3);
    assert!(done.result.is_ok(), "the thread reads on");
    f.flush();
}

/// A client may send right after its `join`, without waiting for `joined` (the web client
/// does, with its outbox, after a reconnect): the send is taken while the read is in
/// flight, acknowledged at once, and the message itself follows the reply like any other
/// that arrived meanwhile.
#[test]
fn a_send_right_after_join_is_taken_while_the_read_is_in_flight() {
    let mut f = Fixture::held(HubSettings::default());
    let ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    f.answer_reads();
    let mut bob = f.signed_in(2, "bob");
    f.hub.apply(2, join("general", None));
    f.say(&bob, "general", "hello", "b1");
    let early = bob.drain();
    assert!(
        matches!(early.as_slice(), [ServerMsg::Ack { client_id, .. }] if client_id == "b1"),
        "acknowledged, not refused: {early:?}"
    );
    assert_eq!(f.answer_reads(), 1);
    match bob.drain().as_slice() {
        [ServerMsg::Joined { history, .. }, rest @ ..] => {
            assert!(history.is_empty(), "read before the send was committed");
            assert_eq!(bodies(rest), ["hello"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(ada);
}

/// One connection may have a few pages of history waiting for a reader, not the whole
/// read queue that everyone's joins wait in: more are refused until one is answered.
#[test]
fn pages_of_history_in_flight_are_bounded_per_connection() {
    let settings = HubSettings {
        history_reads_per_connection: 2,
        ..HubSettings::default()
    };
    let mut f = Fixture::held(settings);
    let mut ada = f.signed_in(1, "ada");
    f.hub.apply(1, join("general", None));
    f.answer_reads();
    ada.drain();
    let fetch = || Command::FetchHistory {
        room: room("general"),
        before: 10,
        limit: 10,
    };
    for _ in 0..3 {
        f.hub.apply(1, fetch());
    }
    match ada.drain().as_slice() {
        [
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms: Some(_),
                ..
            },
        ] => {}
        other => panic!("expected one refusal, got {other:?}"),
    }
    assert_eq!(
        f.answer_reads(),
        2,
        "two reads were queued, the third refused"
    );
    assert_eq!(ada.drain().len(), 2, "both answered");
    f.hub.apply(1, fetch());
    assert_eq!(f.answer_reads(), 1, "room again once they are answered");
    // Opening a room around a message counts alike.
    let around = || Command::FetchAround {
        room: room("general"),
        seq: 5,
    };
    f.hub.apply(1, fetch());
    f.hub.apply(1, around());
    f.hub.apply(1, around());
    assert_eq!(
        error_code(&ada.drain()),
        Some(ErrorCode::RateLimited),
        "a third read refused"
    );
    assert_eq!(f.answer_reads(), 2);
    assert!(matches!(
        ada.drain().as_slice(),
        [ServerMsg::History { .. }, ServerMsg::Around { .. }]
    ));
    // Another connection is not held back by ada's.
    let mut bob = f.member(2, "bob");
    f.hub.apply(2, fetch());
    f.hub.apply(2, fetch());
    assert!(bob.drain().is_empty());
}

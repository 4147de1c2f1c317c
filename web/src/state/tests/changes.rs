//! Protocol 6's changes to messages (edits, deletions, reactions) and the snapshots
//! that carry them, replies, jumps and a store replaced under the client.

use confab_shared::{Change, ChangeKind, Quote, Reaction};

use super::*;

fn change(seq: u64, target: u64, by: &str, change: ChangeKind) -> ServerMsg {
    ServerMsg::Changed(Change {
        room: "general".into(),
        seq,
        target,
        by: by.into(),
        ts: 7_000 + i64::try_from(seq).unwrap_or_default(),
        change,
    })
}

fn edited(seq: u64, target: u64, body: &str) -> ServerMsg {
    change(seq, target, "a", ChangeKind::Edited { body: body.into() })
}

fn thumbs(seq: u64, target: u64, by: &str) -> ServerMsg {
    change(
        seq,
        target,
        by,
        ChangeKind::Reacted {
            emoji: "\u{1F44D}".into(),
        },
    )
}

fn replay(messages: Vec<ChatMessage>, through: u64) -> ServerMsg {
    ServerMsg::Replay {
        room: "general".into(),
        messages,
        through,
    }
}

fn history(messages: Vec<ChatMessage>) -> ServerMsg {
    ServerMsg::History {
        room: "general".into(),
        messages,
        more: true,
    }
}

/// A snapshot of message `seq` showing the log up to `rev`, with this text.
fn snapshot(seq: u64, rev: u64, body: &str) -> ChatMessage {
    ChatMessage {
        body: body.into(),
        rev,
        ..msg(seq, "general", "a")
    }
}

fn shown(s: &State, seq: u64) -> (String, u64) {
    let m = s.joined["general"].message(seq).expect("loaded");
    (m.body.clone(), m.rev)
}

fn seqs(s: &State) -> Vec<u64> {
    s.joined["general"].messages.iter().map(|m| m.seq).collect()
}

fn pending_change(client_id: &str, change: PendingChange) -> Pending {
    Pending {
        client_id: client_id.into(),
        room: "general".into(),
        body: String::new(),
        failed: None,
        reply_to: None,
        change: Some(change),
        files: Vec::new(),
    }
}

fn ack(client_id: &str, seq: u64) -> ServerMsg {
    ServerMsg::Ack {
        room: "general".into(),
        client_id: client_id.into(),
        id: 0,
        seq,
        ts: 9_000,
    }
}

#[test]
fn a_change_applies_once_and_one_already_shown_changes_nothing() {
    let mut s = signed_in(vec![]);
    server(&mut s, joined("general", vec![msg(1, "general", "a")]));
    server(&mut s, edited(2, 1, "fixed"));
    assert_eq!(shown(&s, 1), ("fixed".into(), 2));
    assert_eq!(
        s.joined["general"].message(1).and_then(|m| m.edited),
        Some(7_002)
    );
    let before = Rc::new(s);
    for again in [edited(2, 1, "fixed"), edited(2, 1, "other text, same seq")] {
        let after = Rc::clone(&before).reduce(Action::Server {
            msg: again,
            now: 1_000.0,
        });
        assert!(Rc::ptr_eq(&before, &after), "seen already: the same state");
    }
    let mut s = (*before).clone();
    server(&mut s, change(3, 1, "a", ChangeKind::Deleted));
    let m = s.joined["general"].message(1).expect("still there");
    assert!(m.deleted && m.body.is_empty(), "a tombstone");
}

#[test]
fn a_snapshot_replaces_an_older_copy_never_a_newer_one() {
    let mut s = signed_in(vec![]);
    server(&mut s, joined("general", vec![msg(1, "general", "a")]));
    server(&mut s, edited(5, 1, "live"));
    // A page read before the edit (rev 3) must not undo it; one read after does win.
    server(&mut s, replay(vec![snapshot(1, 3, "stale")], 5));
    assert_eq!(shown(&s, 1), ("live".into(), 5));
    server(&mut s, replay(vec![snapshot(1, 6, "newer")], 6));
    assert_eq!(shown(&s, 1), ("newer".into(), 6));
}

/// A replay page holds every message created or changed since the cursor; one older
/// than all the client holds would leave a hole before them, and is left for
/// scrolling back to bring.
#[test]
fn a_replayed_message_older_than_all_held_is_ignored_and_the_rest_upserted() {
    let mut s = signed_in(vec![]);
    server(
        &mut s,
        joined(
            "general",
            vec![msg(10, "general", "a"), msg(12, "general", "a")],
        ),
    );
    server(
        &mut s,
        replay(
            vec![
                snapshot(3, 20, "edited long ago"),
                snapshot(12, 21, "edited while away"),
                msg(22, "general", "b"),
            ],
            22,
        ),
    );
    assert_eq!(seqs(&s), [10, 12, 22]);
    assert_eq!(shown(&s, 12), ("edited while away".into(), 21));
    // The `joined` that ends a replay follows the same rule.
    server(
        &mut s,
        joined(
            "general",
            vec![snapshot(4, 23, "x"), msg(24, "general", "b")],
        ),
    );
    assert_eq!(seqs(&s), [10, 12, 22, 24]);
    assert!(s.joined["general"].has_older);
}

#[test]
fn a_change_to_a_message_not_loaded_waits_for_the_page_that_brings_it() {
    let mut s = signed_in(vec![]);
    server(&mut s, joined("general", vec![msg(50, "general", "a")]));
    server(&mut s, edited(51, 7, "edited"));
    server(&mut s, thumbs(52, 8, "grace"));
    assert_eq!(s.joined["general"].orphans.len(), 2);
    // The page was read before the edit of 7 and after the reaction to 8.
    let mut eight = snapshot(8, 52, "m8");
    eight.reactions = vec![Reaction {
        emoji: "\u{1F44D}".into(),
        users: vec!["grace".into()],
    }];
    server(&mut s, history(vec![snapshot(7, 0, "m7"), eight.clone()]));
    assert_eq!(seqs(&s), [7, 8, 50]);
    assert_eq!(shown(&s, 7), ("edited".into(), 51));
    assert_eq!(*s.joined["general"].messages[1], eight, "not applied twice");
    assert!(
        s.joined["general"].orphans.is_empty(),
        "applied, then forgotten"
    );
}

#[test]
fn the_changes_kept_for_messages_not_loaded_are_bounded() {
    let mut s = signed_in(vec![]);
    server(&mut s, joined("general", vec![msg(1_000, "general", "a")]));
    for seq in 1_001..1_001 + MAX_ORPHANS as u64 + 50 {
        server(&mut s, thumbs(seq, 5, &format!("u{seq}")));
    }
    let orphans = &s.joined["general"].orphans;
    assert_eq!(orphans.len(), MAX_ORPHANS);
    assert_eq!(orphans[0].seq, 1_051, "the oldest went");
}

#[test]
fn our_acknowledged_change_shows_at_once_and_lets_earlier_ones_of_others_in() {
    let mut s = signed_in(vec![]);
    server(&mut s, joined("general", vec![msg(1, "general", "ada")]));
    let edit = pending_change(
        "e1",
        PendingChange::Edit {
            seq: 1,
            body: "better".into(),
        },
    );
    s.apply(Action::Outbox(vec![edit]));
    assert_eq!(
        s.pending_here().count(),
        0,
        "a change is not a message on its way"
    );
    assert_eq!(s.changes_here().count(), 1);
    server(&mut s, ack("e1", 11));
    let m = s.joined["general"].message(1).expect("loaded");
    assert_eq!((m.body.as_str(), m.edited), ("better", Some(9_000)));
    assert_eq!(m.revision(), 1, "the copy does not claim to show 2..=11");
    // Grace's reaction came first in the log but reaches us after our ack.
    server(&mut s, thumbs(10, 1, "grace"));
    server(&mut s, edited(11, 1, "better"));
    let m = s.joined["general"].message(1).expect("loaded");
    assert_eq!(m.body, "better");
    assert_eq!(m.reactions.len(), 1);
    assert_eq!(m.rev, 11);
}

#[test]
fn our_reply_shows_a_quote_of_our_copy_until_the_servers_arrives() {
    let mut s = signed_in(vec![]);
    server(
        &mut s,
        joined("general", vec![snapshot(3, 0, "first line\nsecond")]),
    );
    s.apply(Action::Outbox(vec![Pending {
        client_id: "r1".into(),
        room: "general".into(),
        body: "yes".into(),
        failed: None,
        reply_to: Some(3),
        change: None,
        files: Vec::new(),
    }]));
    server(&mut s, ack("r1", 4));
    let reply = s.joined["general"].message(4).expect("shown from the ack");
    assert_eq!(
        reply.reply_to,
        Some(Quote {
            seq: 3,
            from: "a".into(),
            name: "A".into(),
            excerpt: "first line".into(),
            deleted: false,
        })
    );
}

#[test]
fn a_refused_change_says_what_failed() {
    let mut s = signed_in(vec![]);
    s.apply(Action::Outbox(vec![
        pending_change("d1", PendingChange::Delete { seq: 1 }),
        pending_change(
            "e1",
            PendingChange::Edit {
                seq: 1,
                body: "x".into(),
            },
        ),
    ]));
    let refused = |code, client_id: &str| ServerMsg::Error {
        code,
        message: "no".into(),
        room: Some("general".into()),
        client_id: Some(client_id.into()),
        retry_after_ms: None,
    };
    server(&mut s, refused(ErrorCode::Forbidden, "d1"));
    assert_eq!(
        s.notice.as_deref(),
        Some("Could not delete the message: no")
    );
    server(&mut s, refused(ErrorCode::RateLimited, "e1"));
    assert_eq!(s.notice.as_deref(), Some("no (trying again)"));
}

#[test]
fn following_a_link_switches_room_and_remembers_the_message() {
    let mut s = signed_in(vec![]);
    server(&mut s, joined("ops", vec![]));
    s.apply(Action::JumpTo {
        room: "ops".into(),
        seq: 9,
    });
    assert_eq!(s.current, "ops");
    assert_eq!(
        s.jump,
        Some(Jump {
            room: "ops".into(),
            seq: 9
        })
    );
    s.apply(Action::JumpDone);
    assert_eq!(s.jump, None);
}

#[test]
fn a_reply_is_per_room() {
    let mut s = signed_in(vec![]);
    server(&mut s, joined("ops", vec![]));
    s.apply(Action::ReplyTo {
        room: "general".into(),
        seq: Some(3),
    });
    assert_eq!(s.joined["general"].replying, Some(3));
    assert_eq!(s.joined["ops"].replying, None);
    s.apply(Action::ReplyTo {
        room: "general".into(),
        seq: None,
    });
    assert_eq!(s.joined["general"].replying, None);
}

/// The server's store was replaced (a new data directory): `seq`s name other messages
/// now, so nothing held may stay.
#[test]
fn a_welcome_from_another_store_forgets_every_rooms_messages() {
    let mut s = signed_in(vec![]);
    server(&mut s, joined("general", vec![msg(1, "general", "a")]));
    server(&mut s, edited(9, 5, "orphan"));
    s.apply(Action::JumpTo {
        room: "general".into(),
        seq: 1,
    });
    let welcome = |epoch: &str| ServerMsg::Welcome {
        protocol: confab_shared::PROTOCOL_VERSION,
        epoch: epoch.into(),
        you: ada(),
        rooms: vec![],
    };
    server(&mut s, welcome("e1"));
    assert_eq!(seqs(&s), [1], "the same store: a reconnect keeps them");
    server(&mut s, welcome("e2"));
    let view = &s.joined["general"];
    assert!(view.messages.is_empty() && view.orphans.is_empty());
    assert_eq!(s.jump, None);
    assert_eq!(s.epoch.as_deref(), Some("e2"));
}

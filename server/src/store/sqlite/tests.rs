use super::{snapshots::encoded_len, *};
use crate::store::NewMessage;

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir, Durability::Process).expect("open store")
}

fn append(room: &str, from: &str, client_id: &str, body: &str) -> Write {
    Write::Append(NewMessage {
        room: room.into(),
        from: from.into(),
        name: from.to_uppercase(),
        body: body.into(),
        client_id: client_id.into(),
        ts: 7,
        reply_to: None,
        mentions: Vec::new(),
        files: Vec::new(),
    })
}

fn stored(w: &Written) -> &ChatMessage {
    match w {
        Written::Appended(Appended::Stored(m)) => m,
        other => panic!("expected a stored message, got {other:?}"),
    }
}

#[test]
fn migrations_are_valid() {
    migrations().validate().expect("valid migrations");
}

#[test]
fn sequence_is_per_room_gap_free_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    s.apply(&[Write::CreateRoom {
        room: "ops".into(),
        ts: 1,
        kind: RoomKind::Public,
        title: "ops".into(),
        owner: Some("ada".into()),
    }])
    .expect("create");
    let w = s
        .apply(&[
            append("general", "ada", "a1", "one"),
            append("ops", "ada", "a2", "two"),
            append("general", "bob", "b1", "three"),
        ])
        .expect("append");
    let seqs: Vec<(String, u64)> = w
        .iter()
        .map(|w| (stored(w).room.clone(), stored(w).seq))
        .collect();
    assert_eq!(
        seqs,
        [
            ("general".into(), 1),
            ("ops".into(), 1),
            ("general".into(), 2)
        ]
    );
    drop(s);
    let mut s = open(dir.path());
    let w = s
        .apply(&[append("general", "ada", "a3", "four")])
        .expect("append");
    assert_eq!(stored(&w[0]).seq, 3);
    let rooms = s.rooms().expect("rooms");
    let names: Vec<_> = rooms
        .iter()
        .map(|r| (r.name.as_str(), r.last_seq))
        .collect();
    assert_eq!(names, [("general", 3), ("ops", 1)]);
}

#[test]
fn the_writer_store_checkpoints_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = SqliteStore::open_writer(dir.path(), Durability::Process).expect("open");
    let db_bytes = || {
        std::fs::metadata(dir.path().join(DB_FILE))
            .expect("db")
            .len()
    };
    let before = db_bytes();
    let writes: Vec<Write> = (1..=2_000)
        .map(|i| append("general", "ada", &i.to_string(), "a line of chat"))
        .collect();
    s.apply(&writes).expect("append");
    // Commits only reach the log; the database file grows when the checkpoint thread
    // copies them over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db_bytes() == before {
        assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(s);
    let mut s = open(dir.path());
    assert_eq!(
        s.after("general", 0, u64::MAX, 5_000)
            .expect("read")
            .messages
            .len(),
        2_000
    );
}

#[test]
fn the_writer_finishes_a_requested_checkpoint_before_its_next_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = SqliteStore::open_writer(dir.path(), Durability::Process).expect("open");
    s.apply(&[append("general", "ada", "1", "one")])
        .expect("append");
    let checkpointer = s.checkpointer.as_ref().expect("writer has a checkpointer");
    checkpointer.request_rewind();
    s.apply(&[append("general", "ada", "2", "two")])
        .expect("append");
    let checkpointer = s.checkpointer.as_ref().expect("writer has a checkpointer");
    assert!(
        !checkpointer.rewind_wanted(),
        "the writer copied the log first"
    );
    let seqs: Vec<u64> = s
        .after("general", 0, u64::MAX, 10)
        .expect("read")
        .messages
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, [1, 2]);
}

#[test]
fn members_persist_and_leave() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    s.apply(&[
        Write::AddMember {
            room: "general".into(),
            name: "ada".into(),
        },
        Write::AddMember {
            room: "general".into(),
            name: "bob".into(),
        },
        Write::AddMember {
            room: "general".into(),
            name: "ADA".into(),
        },
        Write::RemoveMember {
            room: "general".into(),
            name: "bob".into(),
        },
    ])
    .expect("members");
    drop(s);
    let mut s = open(dir.path());
    assert!(s.has_room("general").expect("query"));
    let rooms = s.rooms().expect("rooms");
    assert_eq!(rooms[0].members, ["ada"]);
}

#[test]
fn pages_of_large_messages_end_at_the_byte_limit_and_resume_where_they_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    // Each body escapes to six bytes a character: about 24 KB per message.
    let heavy = "\u{1}".repeat(limits::MAX_BODY_CHARS);
    let writes: Vec<Write> = (0..40)
        .map(|i| append("general", "ada", &format!("c{i}"), &heavy))
        .collect();
    s.apply(&writes).expect("append");
    let page_bytes = |page: &[ChatMessage]| page.iter().map(encoded_len).sum::<usize>();
    let one = encoded_len(&s.after("general", 0, 40, 1).expect("read").messages[0]);
    assert!(one > 20_000, "a heavy message encodes to {one} bytes");

    let mut after = 0;
    let mut pages = 0;
    while after < 40 {
        let page = s
            .after("general", after, 40, limits::REPLAY_PAGE)
            .expect("replay page")
            .messages;
        assert!(!page.is_empty());
        assert!(
            page_bytes(&page) < limits::MAX_PAGE_BYTES + one,
            "a page of {} bytes",
            page_bytes(&page)
        );
        assert_eq!(
            page[0].seq,
            after + 1,
            "pages follow each other without a gap"
        );
        after = page.last().map_or(after, |m| m.seq);
        pages += 1;
    }
    assert!(
        pages >= 4,
        "40 heavy messages take several pages, got {pages}"
    );

    let newest = s
        .before("general", 41, limits::HISTORY_PAGE)
        .expect("history page");
    assert!(page_bytes(&newest) < limits::MAX_PAGE_BYTES + one);
    assert_eq!(
        newest.last().map(|m| m.seq),
        Some(40),
        "the newest are kept"
    );
    assert!(newest.len() < 40);
    // Small messages are not affected: a page holds its full count.
    let light: Vec<Write> = (0..200)
        .map(|i| append("general", "bob", &format!("l{i}"), "hello"))
        .collect();
    s.apply(&light).expect("append");
    assert_eq!(
        s.before("general", 241, limits::HISTORY_PAGE)
            .expect("read")
            .len(),
        limits::HISTORY_PAGE
    );
}

#[test]
fn around_a_message_are_its_neighbours_and_whether_there_are_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let writes: Vec<Write> = (1..=200)
        .map(|i| append("general", "ada", &format!("c{i}"), &format!("m{i}")))
        .collect();
    s.apply(&writes).expect("append");
    let seqs = |a: &crate::store::Around| a.messages.iter().map(|m| m.seq).collect::<Vec<_>>();
    let middle = s.around("general", 100, 200, 50).expect("read");
    assert_eq!(seqs(&middle), (50..=150).collect::<Vec<_>>());
    assert!(middle.older && middle.newer);
    assert_eq!(
        middle.messages[50].body, "m100",
        "the one asked for, in the middle"
    );
    let start = s.around("general", 10, 200, 50).expect("read");
    assert_eq!(seqs(&start), (1..=60).collect::<Vec<_>>());
    assert!(!start.older && start.newer);
    let end = s.around("general", 195, 200, 50).expect("read");
    assert_eq!(seqs(&end), (145..=200).collect::<Vec<_>>());
    assert!(end.older && !end.newer);
    // Nothing past `until` (not delivered live yet), and exactly up to it.
    let held = s.around("general", 100, 120, 50).expect("read");
    assert_eq!(seqs(&held), (50..=120).collect::<Vec<_>>());
    assert!(!held.newer);
    let beyond = s.around("general", 500, 200, 50).expect("read");
    assert_eq!(seqs(&beyond), (151..=200).collect::<Vec<_>>());
    assert!(beyond.older && !beyond.newer);
    let empty = s.around("ops", 5, 200, 50).expect("read");
    assert!(empty.messages.is_empty() && !empty.older && !empty.newer);
}

#[test]
fn around_keeps_to_a_pages_bytes_from_the_middle_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    // Each body escapes to six bytes a character: about 24 KB per message.
    let heavy = "\u{1}".repeat(limits::MAX_BODY_CHARS);
    let writes: Vec<Write> = (1..=101)
        .map(|i| append("general", "ada", &format!("c{i}"), &heavy))
        .collect();
    s.apply(&writes).expect("append");
    let around = s.around("general", 51, 101, 50).expect("read");
    let bytes: usize = around.messages.iter().map(encoded_len).sum();
    let one = encoded_len(&around.messages[0]);
    assert!(bytes < limits::MAX_PAGE_BYTES + 2 * one, "{bytes} bytes");
    assert!(around.messages.len() < 101);
    assert!(around.older && around.newer, "cut on both sides");
    let first = around.messages[0].seq;
    let last = around.messages[around.messages.len() - 1].seq;
    assert!(first <= 51 && last >= 51);
    assert!(
        (51 - first).abs_diff(last - 51) <= 1,
        "{first}..={last}: centred"
    );
}

mod changes {
    use super::*;
    use crate::store::{ChangeRequest, Changed, NewChange, Refused, Unread};

    fn change(target: u64, by: &str, client_id: &str, what: ChangeRequest) -> Write {
        Write::Change(NewChange {
            room: "general".into(),
            target,
            by: by.into(),
            client_id: client_id.into(),
            ts: 50,
            what,
        })
    }

    fn edit(target: u64, by: &str, client_id: &str, body: &str) -> Write {
        change(
            target,
            by,
            client_id,
            ChangeRequest::Edit {
                body: body.into(),
                mentions: Vec::new(),
            },
        )
    }

    fn react(target: u64, by: &str, client_id: &str, emoji: &str) -> Write {
        change(target, by, client_id, ChangeRequest::React(emoji.into()))
    }

    fn outcome(w: &Written) -> &Changed {
        match w {
            Written::Changed(c) => c,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    fn stored_seq(w: &Written) -> u64 {
        match outcome(w) {
            Changed::Stored(c) => c.seq,
            other => panic!("expected a stored change, got {other:?}"),
        }
    }

    fn three_messages() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = open(dir.path());
        s.apply(&[
            append("general", "ada", "1", "one"),
            append("general", "bob", "1", "two"),
            append("general", "ada", "2", "three"),
        ])
        .expect("append");
        (dir, s)
    }

    #[test]
    fn changes_take_the_rooms_next_seq_and_only_the_author_edits() {
        let (_dir, mut s) = three_messages();
        let w = s
            .apply(&[
                edit(1, "ada", "e1", "one, fixed"),
                edit(2, "ada", "e2", "not mine"),
                edit(9, "ada", "e3", "nothing there"),
                edit(1, "ada", "e4", "one, fixed"),
            ])
            .expect("apply");
        assert_eq!(stored_seq(&w[0]), 4, "after the three messages");
        assert_eq!(outcome(&w[1]), &Changed::Refused(Refused::NotYours));
        assert_eq!(outcome(&w[2]), &Changed::Refused(Refused::UnknownMessage));
        assert_eq!(outcome(&w[3]), &Changed::Unchanged { rev: 4 }, "same text");
        // The next message follows the change.
        let w = s
            .apply(&[append("general", "bob", "2", "four")])
            .expect("append");
        assert_eq!(stored(&w[0]).seq, 5);
        let m = &s.before("general", 2, 1).expect("read")[0];
        assert_eq!(
            (m.body.as_str(), m.edited, m.rev),
            ("one, fixed", Some(50), 4)
        );
        // A repeated client id is answered with the original's seq, whatever it asks.
        let w = s.apply(&[edit(1, "ada", "e1", "again")]).expect("apply");
        assert_eq!(outcome(&w[0]), &Changed::Duplicate { seq: 4 });
        assert_eq!(s.rooms().expect("rooms")[0].last_seq, 5);
    }

    #[test]
    fn a_deletion_leaves_a_tombstone_and_only_the_author_or_a_manager_deletes() {
        let (_dir, mut s) = three_messages();
        s.apply(&[react(2, "ada", "r1", "👍")]).expect("react");
        let w = s
            .apply(&[
                change(2, "ada", "d1", ChangeRequest::Delete { any: false }),
                change(2, "ada", "d2", ChangeRequest::Delete { any: true }),
                change(2, "bob", "d3", ChangeRequest::Delete { any: false }),
                edit(2, "bob", "e1", "back"),
                react(2, "ada", "r2", "🎉"),
            ])
            .expect("apply");
        assert_eq!(outcome(&w[0]), &Changed::Refused(Refused::NotYours));
        assert_eq!(stored_seq(&w[1]), 5, "a manager may");
        assert_eq!(outcome(&w[2]), &Changed::Unchanged { rev: 5 });
        assert_eq!(outcome(&w[3]), &Changed::Refused(Refused::UnknownMessage));
        assert_eq!(outcome(&w[4]), &Changed::Refused(Refused::UnknownMessage));
        let m = &s.before("general", 3, 1).expect("read")[0];
        assert!(
            m.deleted && m.body.is_empty() && m.reactions.is_empty(),
            "{m:?}"
        );
    }

    #[test]
    fn a_deleted_messages_text_is_gone_from_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = "the launch code is 7f3a9c1e";
        {
            let mut s = SqliteStore::open_writer(dir.path(), Durability::Process).expect("open");
            s.apply(&[append("general", "ada", "1", secret)])
                .expect("append");
            s.apply(&[change(1, "ada", "d", ChangeRequest::Delete { any: false })])
                .expect("delete");
        }
        // Closing the last connection checkpoints the log into the database and
        // removes it.
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir.path()).expect("list") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(path);
            }
        }
        assert!(found.is_empty(), "the text is still in {found:?}");
    }

    #[test]
    fn reactions_are_one_per_person_and_emoji_and_bounded() {
        let (_dir, mut s) = three_messages();
        let w = s
            .apply(&[
                react(1, "bob", "r1", "👍"),
                react(1, "cy", "r2", "👍"),
                react(1, "bob", "r3", "👍"),
                react(1, "bob", "r4", "🎉"),
                change(1, "cy", "u1", ChangeRequest::Unreact("👍".into())),
                change(1, "cy", "u2", ChangeRequest::Unreact("👍".into())),
            ])
            .expect("apply");
        assert_eq!(stored_seq(&w[0]), 4);
        assert_eq!(stored_seq(&w[1]), 5);
        assert_eq!(outcome(&w[2]), &Changed::Unchanged { rev: 5 });
        assert_eq!(stored_seq(&w[3]), 6);
        assert_eq!(stored_seq(&w[4]), 7);
        assert_eq!(outcome(&w[5]), &Changed::Unchanged { rev: 7 });
        let m = &s.before("general", 2, 1).expect("read")[0];
        let shown: Vec<(&str, Vec<&str>)> = m
            .reactions
            .iter()
            .map(|r| {
                (
                    r.emoji.as_str(),
                    r.users.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(shown, [("👍", vec!["bob"]), ("🎉", vec!["bob"])]);

        // Different emoji per message are bounded, and so are reactions in all.
        let emoji: Vec<String> = (0..limits::MAX_EMOJI_PER_MESSAGE + 1)
            .map(|i| {
                char::from_u32(0x1F600 + u32::try_from(i).unwrap_or(0))
                    .map_or_else(String::new, String::from)
            })
            .collect();
        let writes: Vec<Write> = emoji
            .iter()
            .enumerate()
            .map(|(i, e)| react(2, "ada", &format!("m{i}"), e))
            .collect();
        let w = s.apply(&writes).expect("apply");
        assert!(matches!(
            outcome(&w[limits::MAX_EMOJI_PER_MESSAGE - 1]),
            Changed::Stored(_)
        ));
        assert_eq!(
            outcome(&w[limits::MAX_EMOJI_PER_MESSAGE]),
            &Changed::Refused(Refused::TooManyReactions)
        );
        let writes: Vec<Write> = (0..=limits::MAX_REACTIONS_PER_MESSAGE)
            .map(|i| react(3, &format!("p{i}"), "r", "👍"))
            .collect();
        let w = s.apply(&writes).expect("apply");
        assert!(matches!(
            outcome(&w[limits::MAX_REACTIONS_PER_MESSAGE - 1]),
            Changed::Stored(_)
        ));
        assert_eq!(
            outcome(&w[limits::MAX_REACTIONS_PER_MESSAGE]),
            &Changed::Refused(Refused::TooManyReactions)
        );
    }

    #[test]
    fn a_resume_page_brings_each_message_created_or_changed_once_as_it_is_now() {
        let (_dir, mut s) = three_messages();
        s.apply(&[
            react(1, "bob", "r1", "👍"),                                 // 4
            append("general", "bob", "3", "five"),                       // 5
            edit(1, "ada", "e1", "one!"),                                // 6
            change(5, "bob", "d", ChangeRequest::Delete { any: false }), // 7
            react(3, "bob", "r2", "🎉"),                                 // 8
        ])
        .expect("apply");
        // A client that had everything up to 3.
        let page = s.after("general", 3, 8, 500).expect("read");
        assert_eq!(page.through, 8);
        let got: Vec<(u64, &str, bool, u64)> = page
            .messages
            .iter()
            .map(|m| (m.seq, m.body.as_str(), m.deleted, m.revision()))
            .collect();
        assert_eq!(
            got,
            [
                (1, "one!", false, 6),
                (5, "", true, 7),
                (3, "three", false, 8)
            ]
        );
        assert_eq!(page.messages[0].reactions[0].users, ["bob"]);
        // Paged by log entries: the first two entries after 3 touch 1 and 5.
        let page = s.after("general", 3, 8, 2).expect("read");
        assert_eq!(page.through, 5);
        let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 5]);
        // A page read up to 6 still shows 1 and 5 as they are now (after 7 and 8): a
        // client skips the changes its copy already shows.
        let page = s.after("general", 5, 6, 500).expect("read");
        assert_eq!(page.through, 6);
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].revision(), 6);
    }

    #[test]
    fn a_reply_quotes_its_target_as_it_is_now() {
        let (_dir, mut s) = three_messages();
        let mut reply = match append("general", "bob", "q", "agreed") {
            Write::Append(m) => m,
            _ => unreachable!(),
        };
        reply.reply_to = Some(1);
        let mut bad = reply.clone();
        bad.client_id = "q2".into();
        bad.reply_to = Some(40); // no such message
        let w = s
            .apply(&[Write::Append(reply.clone()), Write::Append(bad)])
            .expect("append");
        let quote = stored(&w[0]).reply_to.clone().expect("quote");
        assert_eq!(
            (quote.seq, quote.from.as_str(), quote.excerpt.as_str()),
            (1, "ada", "one")
        );
        assert_eq!(
            w[1],
            Written::Appended(Appended::Refused(Refused::UnknownMessage))
        );
        s.apply(&[change(1, "ada", "d", ChangeRequest::Delete { any: false })])
            .expect("delete");
        let page = s.before("general", 10, 10).expect("read");
        let quote = page[3].reply_to.clone().expect("quote");
        assert!(quote.deleted && quote.excerpt.is_empty(), "{quote:?}");
        // The repeat of a reply is a repeat even once its target is gone.
        let w = s.apply(&[Write::Append(reply)]).expect("append");
        assert!(matches!(w[0], Written::Appended(Appended::Duplicate(_))));
    }

    #[test]
    fn unread_counts_follow_the_marker_and_skip_own_and_deleted_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = open(dir.path());
        s.apply(&[append("general", "bob", "0", "before ada came")])
            .expect("append");
        s.apply(&[Write::AddMember {
            room: "general".into(),
            name: "ada".into(),
        }])
        .expect("member");
        let mut mention = match append("general", "bob", "1", "hi @ada") {
            Write::Append(m) => m,
            _ => unreachable!(),
        };
        mention.mentions = vec!["ada".into()];
        s.apply(&[
            Write::Append(mention),                                      // 2
            append("general", "ada", "1", "mine"),                       // 3
            append("general", "bob", "2", "soon deleted"),               // 4
            change(4, "bob", "d", ChangeRequest::Delete { any: false }), // 5
            append("general", "cy", "1", "hello"),                       // 6
        ])
        .expect("append");
        assert_eq!(
            s.unread("ada", "general", 6).expect("unread"),
            Unread {
                read: 1,
                messages: 2,
                mentions: 1
            }
        );
        assert_eq!(
            s.unread("ada", "general", 2).expect("unread").messages,
            1,
            "counted up to `until` only"
        );
        s.apply(&[
            Write::MarkRead {
                user: "ada".into(),
                room: "general".into(),
                seq: 3,
            },
            Write::MarkRead {
                user: "ada".into(),
                room: "general".into(),
                seq: 2,
            },
        ])
        .expect("mark");
        assert_eq!(
            s.unread("ada", "general", 6).expect("unread"),
            Unread {
                read: 3,
                messages: 1,
                mentions: 0
            },
            "a marker never moves back"
        );
        assert_eq!(
            s.unread("zed", "general", 6).expect("unread"),
            Unread {
                read: 6,
                messages: 0,
                mentions: 0
            },
            "no marker: all read"
        );
        s.apply(&[Write::Mute {
            user: "ada".into(),
            room: "general".into(),
            muted: true,
        }])
        .expect("mute");
        assert_eq!(
            s.mutes().expect("mutes"),
            [("ada".to_owned(), "general".to_owned())]
        );
        assert_eq!(s.unread("ada", "general", 6).expect("unread").read, 3);
    }

    #[test]
    fn the_epoch_is_made_once_per_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = open(dir.path()).epoch().expect("epoch");
        assert_eq!(first.len(), 32);
        assert_eq!(open(dir.path()).epoch().expect("epoch"), first);
        let other = tempfile::tempdir().expect("tempdir");
        assert_ne!(open(other.path()).epoch().expect("epoch"), first);
    }
}

mod search {
    use std::time::Duration;

    use super::*;
    use crate::{
        search::query,
        store::{ChangeRequest, NewChange, SearchPage, SearchRequest},
    };

    fn at(room: &str, from: &str, client_id: &str, body: &str, ts: i64) -> Write {
        Write::Append(NewMessage {
            ts,
            ..match append(room, from, client_id, body) {
                Write::Append(m) => m,
                _ => unreachable!("append makes an append"),
            }
        })
    }

    fn change(room: &str, target: u64, by: &str, client_id: &str, what: ChangeRequest) -> Write {
        Write::Change(NewChange {
            room: room.into(),
            target,
            by: by.into(),
            client_id: client_id.into(),
            ts: 50,
            what,
        })
    }

    fn request(text: &str, rooms: &[&str]) -> SearchRequest {
        let q = query::parse(text).expect("a query");
        SearchRequest {
            terms: q.terms,
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            from: q.from,
            since_ms: q.since_ms,
            until_ms: q.until_ms,
            before: None,
            limit: limits::SEARCH_PAGE,
            budget: Duration::from_secs(10),
        }
    }

    fn found(page: &SearchPage) -> Vec<&str> {
        page.hits.iter().map(|h| h.message.body.as_str()).collect()
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = open(dir.path());
        s.apply(&[Write::CreateRoom {
            room: "ops".into(),
            ts: 1,
            kind: RoomKind::Private,
            title: "ops".into(),
            owner: Some("ada".into()),
        }])
        .expect("room");
        s.apply(&[
            at("general", "ada", "1", "The borrow checker is strict", 1_000),
            at("general", "bob", "1", "checkers and chess, borrowed", 2_000),
            at("ops", "ada", "2", "deploy the borrow checker fix", 3_000),
            at("general", "bob", "2", "Café au lait in Zürich", 86_400_000),
        ])
        .expect("append");
        (dir, s)
    }

    #[test]
    fn words_prefixes_and_phrases_newest_first() {
        let (_dir, mut s) = store();
        let both = ["general", "ops"];
        let page = s.search(&request("borrow", &both)).expect("search");
        assert_eq!(
            found(&page),
            [
                "deploy the borrow checker fix",
                "The borrow checker is strict"
            ]
        );
        assert!(!page.more && !page.slow);
        assert_eq!(page.hits[0].marks, [[11, 17]]);
        let page = s.search(&request("borrow*", &both)).expect("search");
        assert_eq!(page.hits.len(), 3, "borrowed too");
        assert_eq!(page.hits[1].marks, [[20, 28]]);
        let page = s.search(&request("\"checker is\"", &both)).expect("search");
        assert_eq!(found(&page), ["The borrow checker is strict"]);
        assert_eq!(page.hits[0].marks, [[11, 21]], "the phrase, one mark");
        let page = s.search(&request("zurich CAFE", &both)).expect("search");
        assert_eq!(found(&page), ["Café au lait in Zürich"]);
        let body = "Café au lait in Zürich";
        let marked: Vec<&str> = page.hits[0]
            .marks
            .iter()
            .map(|[a, b]| &body[*a as usize..*b as usize])
            .collect();
        assert_eq!(marked, ["Café", "Zürich"], "byte ranges on char boundaries");
    }

    #[test]
    fn deleted_and_replaced_words_leave_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = SqliteStore::open_writer(dir.path(), Durability::Process).expect("open");
            s.apply(&[
                append("general", "ada", "1", "the code is zqxvbnmdeleted"),
                append("general", "ada", "2", "the code is zqxvbnmedited"),
            ])
            .expect("append");
            s.apply(&[
                Write::Change(NewChange {
                    room: "general".into(),
                    target: 1,
                    by: "ada".into(),
                    client_id: "d".into(),
                    ts: 9,
                    what: ChangeRequest::Delete { any: false },
                }),
                Write::Change(NewChange {
                    room: "general".into(),
                    target: 2,
                    by: "ada".into(),
                    client_id: "e".into(),
                    ts: 9,
                    what: ChangeRequest::Edit {
                        body: "nothing to see".into(),
                        mentions: Vec::new(),
                    },
                }),
            ])
            .expect("change");
        }
        for entry in std::fs::read_dir(dir.path()).expect("list") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read");
            for word in ["zqxvbnmdeleted", "zqxvbnmedited"] {
                assert!(
                    !bytes.windows(word.len()).any(|w| w == word.as_bytes()),
                    "{word} is still in {path:?}"
                );
            }
        }
    }

    #[test]
    fn a_search_over_its_budget_stops_with_what_it_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = open(dir.path());
        let writes: Vec<Write> = (1..=3000)
            .map(|i| {
                append(
                    "general",
                    "ada",
                    &format!("c{i}"),
                    &format!("common word {i}"),
                )
            })
            .collect();
        s.apply(&writes).expect("append");
        // Rooms too many to name in the index's expression, none of them general's: every
        // match would be looked at.
        let mut asked = request("common", &[]);
        asked.rooms = (0..20).map(|i| format!("elsewhere{i}")).collect();
        asked.budget = Duration::ZERO;
        let page = s.search(&asked).expect("search");
        assert!(page.slow && page.hits.is_empty() && !page.more);
        // The connection works normally afterwards.
        let page = s.search(&request("common", &["general"])).expect("search");
        assert!(!page.slow && page.more);
        assert_eq!(page.hits.len(), limits::SEARCH_PAGE);
    }

    /// The index is external content: taking a row out with other values than it was
    /// put in with corrupts it. FTS5's integrity check, told to compare with the content
    /// table (rank 1), says whether every write kept the two in step.
    #[test]
    fn the_index_matches_the_messages_after_every_kind_of_write() {
        let (dir, mut s) = store();
        s.apply(&[
            change(
                "general",
                1,
                "ada",
                "e1",
                ChangeRequest::Edit {
                    body: "edited once".into(),
                    mentions: Vec::new(),
                },
            ),
            change(
                "general",
                1,
                "ada",
                "e2",
                ChangeRequest::Edit {
                    body: "edited twice".into(),
                    mentions: Vec::new(),
                },
            ),
            change(
                "general",
                2,
                "bob",
                "d1",
                ChangeRequest::Delete { any: false },
            ),
            change("ops", 1, "ada", "d2", ChangeRequest::Delete { any: false }),
            append("general", "cy", "c1", "after the changes"),
        ])
        .expect("changes");
        s.apply(&[Write::DeleteRoom { room: "ops".into() }])
            .expect("delete room");
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("db");
        conn.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .expect("the index matches the messages");
        let page = s.search(&request("edited", &["general"])).expect("search");
        assert_eq!(found(&page), ["edited twice"]);
        // The check can fail: a body changed behind the index's back.
        conn.execute("UPDATE messages SET body = 'sneaky' WHERE seq = 1", [])
            .expect("update");
        assert!(
            conn.execute(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
                [],
            )
            .is_err(),
            "a body out of step is caught"
        );
    }

    #[test]
    fn messages_stored_before_the_index_are_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("db");
            migrations().to_version(&mut conn, 5).expect("migrate to 5");
            conn.execute(
                "INSERT INTO messages (room, seq, sender, client_id, body, ts)
                 VALUES ('general', 1, 'ada', 'c1', 'an old needle', 1)",
                [],
            )
            .expect("insert");
        }
        let mut s = open(dir.path());
        let page = s.search(&request("needle", &["general"])).expect("search");
        assert_eq!(found(&page), ["an old needle"]);
    }
}

#[test]
fn servers_share_the_data_dir_lock_and_a_migration_takes_it_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = lock_data_dir(dir.path(), false).expect("a server's lock");
    let another = lock_data_dir(dir.path(), false).expect("shared with another");
    assert!(matches!(
        lock_data_dir(dir.path(), true),
        Err(DataDirLock::InUse(_))
    ));
    drop((server, another));
    let migration = lock_data_dir(dir.path(), true).expect("free once they stop");
    assert!(matches!(
        lock_data_dir(dir.path(), false),
        Err(DataDirLock::InUse(_))
    ));
    drop(migration);
    lock_data_dir(dir.path(), false).expect("free again");
}

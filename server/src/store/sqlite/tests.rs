use super::*;
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
fn a_repeated_client_id_returns_the_original() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let first = s
        .apply(&[append("general", "ada", "x", "hello")])
        .expect("append");
    // Same batch and a later batch: neither stores a second copy.
    let again = s
        .apply(&[
            append("general", "Ada", "x", "hello"),
            append("general", "bob", "x", "bob's own x"),
        ])
        .expect("append");
    match &again[0] {
        Written::Appended(Appended::Duplicate(m)) => assert_eq!(m, stored(&first[0])),
        other => panic!("expected duplicate, got {other:?}"),
    }
    // Client ids are per sender.
    assert_eq!(stored(&again[1]).seq, 2);
    assert_eq!(s.after("general", 0, u64::MAX, 10).expect("read").len(), 2);
}

#[test]
fn a_failed_batch_stores_nothing_and_frees_its_sequence_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    s.apply(&[append("general", "ada", "1", "one")])
        .expect("append");
    // A message to a room that does not exist breaks the foreign key.
    let err = s.apply(&[
        append("general", "ada", "2", "two"),
        append("nowhere", "ada", "3", "x"),
    ]);
    assert!(err.is_err());
    let w = s
        .apply(&[append("general", "ada", "2", "two")])
        .expect("append");
    assert_eq!(stored(&w[0]).seq, 2);
    let bodies: Vec<_> = s
        .after("general", 0, u64::MAX, 10)
        .expect("read")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["one", "two"]);
}

#[test]
fn pages_before_and_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path());
    let writes: Vec<Write> = (1..=10)
        .map(|i| append("general", "ada", &i.to_string(), &format!("m{i}")))
        .collect();
    s.apply(&writes).expect("append");
    let seqs = |v: Vec<ChatMessage>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(s.after("general", 3, u64::MAX, 4).expect("read")),
        [4, 5, 6, 7]
    );
    assert_eq!(seqs(s.after("general", 3, 5, 10).expect("read")), [4, 5]);
    assert_eq!(seqs(s.before("general", 8, 3).expect("read")), [5, 6, 7]);
    assert_eq!(seqs(s.before("general", 3, 10).expect("read")), [1, 2]);
    assert!(s.before("general", 1, 10).expect("read").is_empty());
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
        s.after("general", 0, u64::MAX, 5_000).expect("read").len(),
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
    let one = encoded_len(&s.after("general", 0, 40, 1).expect("read")[0]);
    assert!(one > 20_000, "a heavy message encodes to {one} bytes");

    let mut after = 0;
    let mut pages = 0;
    while after < 40 {
        let page = s
            .after("general", after, 40, limits::REPLAY_PAGE)
            .expect("replay page");
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

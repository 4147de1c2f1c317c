//! The store's behaviour on both backends: each test body takes `&mut dyn Store` and
//! runs once on SQLite and once on a real PostgreSQL (tests/common/services.rs), so the
//! two cannot drift apart (issue 18: "the same store test suite runs against SQLite and
//! PostgreSQL"). Then what only a shared server database has to get right: several
//! nodes migrating at once, and several writers sharing one gap-free sequence per room.
//!
//! Plain `#[test]`s: the synchronous `postgres` client must not run inside a Tokio
//! runtime.

mod common;

use std::{
    collections::BTreeSet,
    sync::{Arc, Barrier},
    thread,
};

use common::{both_stores::on_both_stores, services::Postgres};
use confab_server::store::{
    Appended, ChangeRequest, Changed, Durability, NewChange, NewMessage, PgStore, Refused,
    SqliteStore, Store, StoreError, Write, Written,
};
use confab_shared::{ChangeKind, ChatMessage, RoomKind, limits};

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

fn change(room: &str, target: u64, by: &str, client_id: &str, what: ChangeRequest) -> Write {
    Write::Change(NewChange {
        room: room.into(),
        target,
        by: by.into(),
        client_id: client_id.into(),
        ts: 9,
        what,
    })
}

fn create_room(room: &str) -> Write {
    Write::CreateRoom {
        room: room.into(),
        ts: 1,
        kind: RoomKind::Public,
        title: room.into(),
        owner: Some("ada".into()),
    }
}

fn stored(w: &Written) -> &ChatMessage {
    match w {
        Written::Appended(Appended::Stored(m)) => m,
        other => panic!("expected a stored message, got {other:?}"),
    }
}

fn changed(w: &Written) -> &Changed {
    match w {
        Written::Changed(c) => c,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn seqs(messages: &[ChatMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn all(s: &mut dyn Store, room: &str) -> Vec<ChatMessage> {
    s.after(room, 0, u64::MAX, 100_000).expect("read").messages
}

fn last_seq(s: &mut dyn Store, room: &str) -> u64 {
    s.rooms()
        .expect("rooms")
        .into_iter()
        .find(|r| r.name == room)
        .map(|r| r.last_seq)
        .unwrap_or_else(|| panic!("no room {room}"))
}

// The bodies run on both stores.

fn seqs_are_per_room_and_gap_free(s: &mut dyn Store) {
    s.apply(&[create_room("ops")]).expect("create");
    let w = s
        .apply(&[
            append("general", "ada", "a1", "one"),
            append("ops", "ada", "a2", "two"),
            append("general", "bob", "b1", "three"),
        ])
        .expect("append");
    let got: Vec<(&str, u64)> = w
        .iter()
        .map(|w| (stored(w).room.as_str(), stored(w).seq))
        .collect();
    assert_eq!(got, [("general", 1), ("ops", 1), ("general", 2)]);
    let w = s
        .apply(&[append("general", "ada", "a3", "four")])
        .expect("append");
    assert_eq!(stored(&w[0]).seq, 3);
    let rooms: Vec<(String, u64)> = s
        .rooms()
        .expect("rooms")
        .into_iter()
        .map(|r| (r.name, r.last_seq))
        .collect();
    assert_eq!(rooms, [("general".into(), 3), ("ops".into(), 1)]);
}

fn a_repeated_client_id_answers_the_original(s: &mut dyn Store) {
    let first = s
        .apply(&[append("general", "ada", "x", "hello")])
        .expect("append");
    // Same sender (whatever the case of the name), later batch, other text: the original.
    let again = s
        .apply(&[
            append("general", "Ada", "x", "hello again"),
            append("general", "bob", "x", "bob's own x"),
            append("general", "ada", "x", "and again in the same batch"),
        ])
        .expect("append");
    for w in [&again[0], &again[2]] {
        match w {
            Written::Appended(Appended::Duplicate(m)) => assert_eq!(m, stored(&first[0])),
            other => panic!("expected the original, got {other:?}"),
        }
    }
    // Client ids are per sender, and a repeat takes no seq.
    assert_eq!(stored(&again[1]).seq, 2);
    assert_eq!(seqs(&all(s, "general")), [1, 2]);
    assert_eq!(last_seq(s, "general"), 2);
}

fn replies_quote_what_they_answer(s: &mut dyn Store) {
    let reply = |client_id: &str, to: u64| {
        let Write::Append(mut m) = append("general", "bob", client_id, "indeed") else {
            unreachable!("append makes an Append")
        };
        m.reply_to = Some(to);
        Write::Append(m)
    };
    let w = s
        .apply(&[
            append("general", "ada", "a1", "first line\nsecond line"),
            reply("b1", 1),
            reply("b2", 7),
        ])
        .expect("append");
    let quote = stored(&w[1]).reply_to.clone().expect("a quote");
    assert_eq!(
        (quote.seq, quote.from.as_str(), quote.name.as_str()),
        (1, "ada", "ADA")
    );
    assert_eq!(
        (quote.excerpt.as_str(), quote.deleted),
        ("first line", false)
    );
    assert_eq!(
        w[2],
        Written::Appended(Appended::Refused(Refused::UnknownMessage))
    );
    // Read back, a reply carries the same quote; a refused one took no seq.
    let page = all(s, "general");
    assert_eq!(seqs(&page), [1, 2]);
    assert_eq!(page[1].reply_to, Some(quote));
}

fn a_failed_batch_stores_nothing_and_frees_its_seqs(s: &mut dyn Store) {
    s.apply(&[append("general", "ada", "1", "one")])
        .expect("append");
    let failed = s.apply(&[
        append("general", "ada", "2", "two"),
        append("nowhere", "ada", "3", "x"),
    ]);
    assert!(failed.is_err(), "a message to no room fails its batch");
    let w = s
        .apply(&[append("general", "ada", "2", "two")])
        .expect("append");
    assert_eq!(stored(&w[0]).seq, 2, "no hole where the failed batch was");
    let bodies: Vec<String> = all(s, "general").into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["one", "two"]);
}

fn history_pages(s: &mut dyn Store) {
    let writes: Vec<Write> = (1..=200)
        .map(|i| append("general", "ada", &format!("c{i}"), &format!("m{i}")))
        .collect();
    s.apply(&writes).expect("append");
    assert_eq!(
        seqs(&s.after("general", 3, u64::MAX, 4).expect("read").messages),
        [4, 5, 6, 7]
    );
    let held = s.after("general", 3, 5, 10).expect("read");
    assert_eq!((seqs(&held.messages), held.through), (vec![4, 5], 5));
    assert_eq!(seqs(&s.before("general", 8, 3).expect("read")), [5, 6, 7]);
    assert_eq!(seqs(&s.before("general", 3, 10).expect("read")), [1, 2]);
    assert!(s.before("general", 1, 10).expect("read").is_empty());

    let middle = s.around("general", 100, 200, 50).expect("read");
    assert_eq!(seqs(&middle.messages), (50..=150).collect::<Vec<_>>());
    assert!(middle.older && middle.newer);
    assert_eq!(middle.messages[50].body, "m100");
    let held = s.around("general", 100, 120, 50).expect("read");
    assert_eq!(seqs(&held.messages), (50..=120).collect::<Vec<_>>());
    assert!(held.older && !held.newer);
    let empty = s.around("nowhere", 5, 200, 50).expect("read");
    assert!(empty.messages.is_empty() && !empty.older && !empty.newer);

    // Heavy messages (each body escapes to about 24 KB of JSON): pages keep to the byte
    // budget and follow each other without a gap.
    let heavy = "\u{1}".repeat(limits::MAX_BODY_CHARS);
    let writes: Vec<Write> = (0..40)
        .map(|i| append("general", "bob", &format!("h{i}"), &heavy))
        .collect();
    s.apply(&writes).expect("append");
    let mut after = 200;
    let mut pages = 0;
    while after < 240 {
        let page = s
            .after("general", after, 240, limits::REPLAY_PAGE)
            .expect("page");
        assert_eq!(page.messages.first().map(|m| m.seq), Some(after + 1));
        assert_eq!(page.messages.last().map(|m| m.seq), Some(page.through));
        after = page.through;
        pages += 1;
    }
    assert!(pages >= 4, "40 heavy messages take several pages: {pages}");
    let newest = s
        .before("general", 241, limits::HISTORY_PAGE)
        .expect("page");
    assert_eq!(
        newest.last().map(|m| m.seq),
        Some(240),
        "the newest are kept"
    );
    assert!(newest.len() < 40);
}

fn changes_are_decided_in_the_transaction(s: &mut dyn Store) {
    let w = s
        .apply(&[
            append("general", "ada", "a1", "hello"),
            append("general", "bob", "b1", "hi"),
        ])
        .expect("append");
    assert_eq!(
        seqs(&[stored(&w[0]).clone(), stored(&w[1]).clone()]),
        [1, 2]
    );
    let edit = |body: &str| ChangeRequest::Edit {
        body: body.into(),
        mentions: vec!["bob".into()],
    };
    let w = s
        .apply(&[
            change("general", 1, "ada", "e1", edit("hello, world")),
            change("general", 1, "bob", "e2", edit("not mine")),
            change("general", 1, "ada", "e3", edit("hello, world")),
            change("general", 1, "bob", "r1", ChangeRequest::React("👍".into())),
            change("general", 1, "bob", "r2", ChangeRequest::React("👍".into())),
            change("general", 1, "ada", "e1", edit("a repeat")),
            change("general", 9, "ada", "e4", edit("no such message")),
            change(
                "general",
                2,
                "ada",
                "d1",
                ChangeRequest::Delete { any: false },
            ),
            change(
                "nowhere",
                1,
                "ada",
                "n1",
                ChangeRequest::Delete { any: true },
            ),
        ])
        .expect("changes");
    match changed(&w[0]) {
        Changed::Stored(c) => {
            assert_eq!((c.seq, c.target), (3, 1));
            assert_eq!(
                c.change,
                ChangeKind::Edited {
                    body: "hello, world".into()
                }
            );
        }
        other => panic!("expected the edit stored, got {other:?}"),
    }
    assert_eq!(changed(&w[1]), &Changed::Refused(Refused::NotYours));
    assert_eq!(changed(&w[2]), &Changed::Unchanged { rev: 3 });
    assert!(matches!(changed(&w[3]), Changed::Stored(c) if c.seq == 4));
    assert_eq!(changed(&w[4]), &Changed::Unchanged { rev: 4 });
    assert_eq!(changed(&w[5]), &Changed::Duplicate { seq: 3 });
    assert_eq!(changed(&w[6]), &Changed::Refused(Refused::UnknownMessage));
    assert_eq!(changed(&w[7]), &Changed::Refused(Refused::NotYours));
    assert_eq!(
        changed(&w[8]),
        &Changed::Refused(Refused::UnknownMessage),
        "a change in no room is refused, the batch stored"
    );
    let w = s
        .apply(&[change(
            "general",
            2,
            "ada",
            "d2",
            ChangeRequest::Delete { any: true },
        )])
        .expect("delete");
    assert!(matches!(changed(&w[0]), Changed::Stored(c) if c.seq == 5));
    assert_eq!(last_seq(s, "general"), 5);

    // A resume page after the two messages: each changed message once, as it is now.
    let page = s.after("general", 2, 5, 10).expect("page");
    assert_eq!(page.through, 5);
    assert_eq!(seqs(&page.messages), [1, 2]);
    let (first, second) = (&page.messages[0], &page.messages[1]);
    assert_eq!(
        (first.body.as_str(), first.edited, first.rev),
        ("hello, world", Some(9), 4)
    );
    assert_eq!(first.reactions.len(), 1);
    assert_eq!(first.reactions[0].users, ["bob"]);
    assert!(second.deleted && second.body.is_empty() && second.rev == 5);
    // The edit mentions bob: counted for him until he reads it.
    s.apply(&[Write::MarkRead {
        user: "bob".into(),
        room: "general".into(),
        seq: 0,
    }])
    .expect("marker");
    let unread = s.unread("bob", "general", 5).expect("unread");
    assert_eq!((unread.read, unread.messages, unread.mentions), (0, 1, 1));
}

fn members_markers_and_mutes(s: &mut dyn Store) {
    s.apply(&[create_room("ops"), append("ops", "ada", "a1", "before bob")])
        .expect("setup");
    s.apply(&[
        Write::AddMember {
            room: "ops".into(),
            name: "ada".into(),
        },
        Write::AddMember {
            room: "ops".into(),
            name: "bob".into(),
        },
        Write::AddMember {
            room: "ops".into(),
            name: "ADA".into(),
        },
    ])
    .expect("members");
    // A new member has read what came before them.
    assert_eq!(s.unread("bob", "ops", 1).expect("unread").read, 1);
    s.apply(&[
        append("ops", "ada", "a2", "after"),
        append("ops", "ada", "a3", "and more"),
    ])
    .expect("append");
    let unread = s.unread("bob", "ops", 3).expect("unread");
    assert_eq!((unread.read, unread.messages), (1, 2));
    s.apply(&[
        Write::MarkRead {
            user: "bob".into(),
            room: "ops".into(),
            seq: 3,
        },
        Write::MarkRead {
            user: "bob".into(),
            room: "ops".into(),
            seq: 2,
        },
        Write::Mute {
            user: "bob".into(),
            room: "ops".into(),
            muted: true,
        },
    ])
    .expect("marks");
    assert_eq!(
        s.unread("bob", "ops", 3).expect("unread").read,
        3,
        "a marker never moves back"
    );
    assert_eq!(s.mutes().expect("mutes"), [("bob".into(), "ops".into())]);
    // No marker at all reads as everything read.
    assert_eq!(s.unread("cy", "ops", 3).expect("unread").read, 3);
    s.apply(&[Write::RemoveMember {
        room: "ops".into(),
        name: "bob".into(),
    }])
    .expect("leave");
    let ops = s
        .rooms()
        .expect("rooms")
        .into_iter()
        .find(|r| r.name == "ops")
        .expect("ops");
    assert_eq!(ops.members, ["ada"]);
    assert!(s.mutes().expect("mutes").is_empty());
    let epoch = s.epoch().expect("epoch");
    assert_eq!(
        epoch.len(),
        32,
        "an epoch of 16 random bytes in hex: {epoch}"
    );
    assert_eq!(s.epoch().expect("epoch"), epoch);
    s.apply(&[Write::DeleteRoom { room: "ops".into() }])
        .expect("delete room");
    assert!(s.rooms().expect("rooms").iter().all(|r| r.name != "ops"));
}

on_both_stores!(
    seqs_are_per_room_and_gap_free,
    a_repeated_client_id_answers_the_original,
    replies_quote_what_they_answer,
    a_failed_batch_stores_nothing_and_frees_its_seqs,
    history_pages,
    changes_are_decided_in_the_transaction,
    members_markers_and_mutes,
);

// PostgreSQL only.

#[test]
fn migrations_run_once_however_many_nodes_start_at_once() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let nodes = 6;
    let barrier = Arc::new(Barrier::new(nodes));
    let applied: Vec<usize> = (0..nodes)
        .map(|_| {
            let (url, barrier) = (pg.url(), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut store = PgStore::connect(&url).expect("connect");
                barrier.wait();
                store.migrate().expect("migrate")
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|node| node.join().expect("node thread"))
        .collect();
    // One node applied every step, the others none.
    let mut sorted = applied.clone();
    sorted.sort_unstable();
    let mut expected = vec![0; nodes - 1];
    expected.push(PgStore::schema_steps());
    assert_eq!(sorted, expected, "steps applied per node: {applied:?}");

    // A second start is a no-op; the schema is there once.
    let mut store = PgStore::open(&pg.url()).expect("open again");
    assert_eq!(store.migrate().expect("migrate again"), 0);
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).expect("connect");
    let versions: Vec<i64> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .expect("versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    let steps = i64::try_from(PgStore::schema_steps()).expect("few steps");
    assert_eq!(versions, (1..=steps).collect::<Vec<_>>());
    let rooms = store.rooms().expect("rooms");
    assert_eq!(rooms.len(), 1, "the default room once: {rooms:?}");

    // A database migrated by a newer server is refused, not written to.
    client
        .execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(steps + 1)],
        )
        .expect("pretend a newer step");
    assert!(matches!(
        PgStore::open(&pg.url()),
        Err(StoreError::SchemaTooNew { .. })
    ));
}

#[test]
fn writers_on_several_connections_share_one_gap_free_sequence_per_room() {
    let pg = Postgres::start().expect("start PostgreSQL");
    PgStore::open(&pg.url())
        .expect("open")
        .apply(&[create_room("ops")])
        .expect("create");
    let (nodes, batches) = (4, 8);
    let barrier = Arc::new(Barrier::new(nodes));
    let outcomes: Vec<Vec<Written>> = (0..nodes)
        .map(|node| {
            let (url, barrier) = (pg.url(), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut store = PgStore::connect(&url).expect("connect");
                barrier.wait();
                let mut written = Vec::new();
                for batch in 0..batches {
                    let id = |n: usize| format!("n{node}-b{batch}-{n}");
                    // Rooms in both orders across nodes: the batch locks them in name
                    // order, so this queues instead of deadlocking.
                    let (first, second) = if node % 2 == 0 {
                        ("general", "ops")
                    } else {
                        ("ops", "general")
                    };
                    let mut writes = vec![
                        append(first, &format!("u{node}"), &id(0), "a"),
                        append(second, &format!("u{node}"), &id(1), "b"),
                        // The same send reaching every node: stored once.
                        append("general", "ada", "everywhere", "once"),
                    ];
                    if batch == 3 {
                        // A batch that fails after taking seqs: rolled back, no hole.
                        writes.push(append("nowhere", "ada", &id(2), "x"));
                        assert!(store.apply(&writes).is_err());
                        continue;
                    }
                    written.extend(store.apply(&writes).expect("batch"));
                }
                written
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|node| node.join().expect("node thread"))
        .collect();

    let mut store = PgStore::open(&pg.url()).expect("open");
    let stored_per_room = nodes * (batches - 1);
    for room in ["general", "ops"] {
        let messages = all(&mut store, room);
        let extra = usize::from(room == "general");
        assert_eq!(
            seqs(&messages),
            (1..=(stored_per_room + extra) as u64).collect::<Vec<_>>(),
            "{room}: every seq once, no hole"
        );
        assert_eq!(last_seq(&mut store, room), messages.len() as u64);
    }
    let everywhere: BTreeSet<(u64, String)> = outcomes
        .iter()
        .flatten()
        .filter_map(|w| match w {
            Written::Appended(Appended::Stored(m) | Appended::Duplicate(m)) if m.body == "once" => {
                Some((m.seq, m.body.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(everywhere.len(), 1, "one original for a repeated send");
    let originals = outcomes
        .iter()
        .flatten()
        .filter(|w| matches!(w, Written::Appended(Appended::Stored(m)) if m.body == "once"))
        .count();
    assert_eq!(originals, 1);
}

/// Puts an upload in place as the file endpoints would (their store is SQLite-only
/// for now): id, room, uploader, and an image's size.
type Upload<'a> = &'a mut dyn FnMut(&str, &str, &str, Option<(u32, u32)>);

fn messages_share_their_files(s: &mut dyn Store, upload: Upload<'_>) {
    upload("f1", "general", "ada", Some((640, 480)));
    upload("f2", "general", "ada", None);
    upload("f3", "general", "bob", None);
    let with_files = |client_id: &str, files: &[&str]| {
        let Write::Append(mut m) = append("general", "ada", client_id, "look") else {
            unreachable!("append makes an Append")
        };
        m.files = files.iter().map(|f| (*f).to_owned()).collect();
        Write::Append(m)
    };
    let w = s
        .apply(&[
            with_files("a1", &["f2", "f1"]),
            // Someone else's upload, and one already shared.
            with_files("a2", &["f3"]),
            with_files("a3", &["f1"]),
            // A repeat of a send whose files are shared now (by it): the original.
            with_files("a1", &["f2", "f1"]),
        ])
        .expect("append");
    let shared = stored(&w[0]);
    let files: Vec<(&str, Option<u32>)> = shared
        .files
        .iter()
        .map(|f| (f.id.as_str(), f.image.map(|i| i.width)))
        .collect();
    assert_eq!(
        files,
        [("f2", None), ("f1", Some(640))],
        "in the sender's order"
    );
    assert_eq!(
        w[1],
        Written::Appended(Appended::Refused(Refused::UnknownFile))
    );
    assert_eq!(
        w[2],
        Written::Appended(Appended::Refused(Refused::UnknownFile))
    );
    assert_eq!(w[3], Written::Appended(Appended::Duplicate(shared.clone())));
    assert_eq!(
        s.before("general", 10, 10).expect("page")[0].files,
        shared.files
    );
    // Deleting the message takes its files with it.
    s.apply(&[change(
        "general",
        1,
        "ada",
        "d1",
        ChangeRequest::Delete { any: false },
    )])
    .expect("delete");
    assert!(all(s, "general")[0].files.is_empty());
}

#[test]
fn messages_share_their_files_on_sqlite() {
    use confab_server::store::files::{Blob, FileStore, NewUpload};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = SqliteStore::open(dir.path(), Durability::Process).expect("open SQLite");
    let mut files = FileStore::open(dir.path(), Durability::Process).expect("file store");
    messages_share_their_files(&mut store, &mut |id, room, uploader, image| {
        let blob = Blob {
            hash: format!("hash-of-{id}"),
            size: 10,
            mime: "image/png".into(),
            image: image.map(|(width, height)| confab_shared::ImageSize { width, height }),
        };
        files
            .insert_upload(&NewUpload {
                id,
                blob: &blob,
                room,
                uploader,
                name: "a.png",
                now_ms: 1,
            })
            .expect("upload");
    });
}

#[test]
fn messages_share_their_files_on_postgres() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let mut store = PgStore::open(&pg.url()).expect("open PostgreSQL");
    let mut client = postgres::Client::connect(&pg.url(), postgres::NoTls).expect("connect");
    messages_share_their_files(&mut store, &mut |id, room, uploader, image| {
        let hash = format!("hash-of-{id}");
        let (width, height) = (
            image.map(|(w, _)| i64::from(w)),
            image.map(|(_, h)| i64::from(h)),
        );
        client
            .execute(
                "INSERT INTO file_blobs (hash, size, mime, width, height, created_at)
                 VALUES ($1, 10, 'image/png', $2, $3, 1)",
                &[&hash, &width, &height],
            )
            .expect("blob");
        client
            .execute(
                "INSERT INTO file_uploads (id, blob, room, uploader, name, created_at)
                 VALUES ($1, $2, $3, $4, 'a.png', 1)",
                &[&id, &hash, &room, &uploader],
            )
            .expect("upload");
    });
}

/// The accounts and files stores run in `spawn_blocking` tasks; the synchronous client
/// (which runs a runtime of its own) works there, though never on a worker thread.
#[test]
fn the_store_works_from_a_blocking_task() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let url = pg.url();
    let task = runtime.spawn_blocking(move || {
        let mut store = PgStore::open(&url).expect("open from a blocking task");
        store
            .apply(&[append("general", "ada", "a1", "hello")])
            .expect("append");
        store.rooms().expect("rooms")
    });
    let rooms = runtime.block_on(task).expect("blocking task");
    assert_eq!(rooms[0].last_seq, 1);
}

//! The file store (`confab_server::files::Files`, no HTTP) on both databases: each test
//! body runs once on SQLite and once on a real PostgreSQL (tests/common/services.rs),
//! as tests/pg_store.rs does for the message store. Then what only a cluster has to get
//! right: several nodes, each with its own data directory (its cache), sharing one
//! PostgreSQL: a file kept through one node is served by another, the limits hold
//! when nodes check them at once, and a sweep empties every node's cache.
//!
//! Plain `#[test]`s and std threads: the synchronous `postgres` client must not run on
//! a Tokio worker.

mod common;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Barrier},
    thread,
};

use common::{both_stores::on_both_stores, services::Postgres};
use confab_server::{
    files::{FileLimits, Files, Received, Refusal, preview::Bounds, write_synced},
    store::{
        Appended, ChangeRequest, Database, Durability, NewChange, NewMessage, Store, Write,
        Written, files::Blob, files::RoomAccess,
    },
};
use confab_shared::{Attachment, ImageSize, RoomKind};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const T0: i64 = 1_000 * DAY_MS;

fn limits() -> FileLimits {
    FileLimits {
        max_file_bytes: 10_000_000,
        bytes_per_day: 5_000,
        max_total_bytes: 8_000,
        preview: Bounds::default(),
        preview_decodes: 1,
    }
}

/// One server (SQLite) or one node of a cluster (PostgreSQL): its files, its message
/// store, its data directory.
struct Node {
    files: Files,
    store: Box<dyn Store>,
    database: Database,
    dir: TempDir,
}

impl Node {
    fn open(database: &Database, limits: FileLimits) -> Node {
        let dir = TempDir::new().expect("data dir");
        Node::open_in(database, dir, limits)
    }

    fn open_in(database: &Database, dir: TempDir, limits: FileLimits) -> Node {
        Node {
            files: Files::open(database, dir.path(), limits).expect("open files"),
            store: database.writer().expect("open store"),
            database: database.clone(),
            dir,
        }
    }

    /// Files in this node's `blobs/` and `thumbs/`.
    fn on_disk(&self) -> Vec<PathBuf> {
        let root = self.dir.path().join("files");
        let mut found = Vec::new();
        for dir in ["blobs", "thumbs"] {
            collect(&root.join(dir), &mut found);
        }
        found
    }

    fn apply(&mut self, writes: &[Write]) -> Vec<Written> {
        self.store.apply(writes).expect("apply")
    }
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn hash(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(bytes))
}

/// Receives `bytes` (and a preview, `thumb`) into temporary files, as the upload
/// handler does, and keeps them.
fn keep_with(
    node: &Node,
    room: &str,
    user: &str,
    bytes: &[u8],
    thumb: Option<&[u8]>,
    now_ms: i64,
) -> Result<Attachment, Refusal> {
    let files = &node.files;
    let tmp = files.temp_path();
    write_synced(&tmp, bytes).expect("write tmp");
    let thumb_tmp = files.temp_path();
    if let Some(thumb) = thumb {
        write_synced(&thumb_tmp, thumb).expect("write thumb");
    }
    let kept = files.keep(
        Received {
            tmp: &tmp,
            thumb: thumb.map(|_| thumb_tmp.as_path()),
            blob: Blob {
                hash: hash(bytes),
                size: bytes.len() as u64,
                mime: if thumb.is_some() {
                    "image/png".into()
                } else {
                    "application/octet-stream".into()
                },
                image: thumb.map(|_| ImageSize {
                    width: 3,
                    height: 2,
                }),
            },
            room,
            uploader: user,
            name: "f.bin",
        },
        now_ms,
    );
    // What the handler's guard does.
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_file(&thumb_tmp);
    kept
}

fn keep(node: &Node, user: &str, bytes: &[u8], now_ms: i64) -> Result<Attachment, Refusal> {
    keep_with(node, "general", user, bytes, None, now_ms)
}

/// The bytes a download of upload `id` by `user` serves (or of its preview), as the
/// handler finds them: `None` for "no such file".
fn download(node: &Node, id: &str, user: Option<&str>, thumb: bool) -> Option<Vec<u8>> {
    let (upload, access) = node.files.lookup(id, user).expect("lookup")?;
    if access == RoomAccess::Missing {
        return None;
    }
    let path = node.files.local(&upload.blob, thumb).expect("local")?;
    Some(std::fs::read(path).expect("read the served file"))
}

fn message(room: &str, from: &str, client_id: &str, files: Vec<String>) -> Write {
    Write::Append(NewMessage {
        room: room.into(),
        from: from.into(),
        name: from.to_uppercase(),
        body: String::new(),
        client_id: client_id.into(),
        ts: T0,
        reply_to: None,
        mentions: Vec::new(),
        files,
    })
}

fn delete(room: &str, seq: u64, by: &str, client_id: &str) -> Write {
    Write::Change(NewChange {
        room: room.into(),
        target: seq,
        by: by.into(),
        client_id: client_id.into(),
        ts: T0,
        what: ChangeRequest::Delete { any: false },
    })
}

// The bodies, on both stores.

fn a_kept_file_is_looked_up_and_served(node: &mut Node) {
    let kept = keep(node, "ada", b"hello, files", T0).expect("kept");
    assert_eq!(kept.size, 12);
    let (upload, access) = node
        .files
        .lookup(&kept.id, Some("ada"))
        .expect("lookup")
        .expect("found");
    assert_eq!(access, RoomAccess::Public);
    assert_eq!(upload.room, "general");
    assert_eq!(upload.blob.hash, hash(b"hello, files"));
    assert_eq!(
        node.files.known_blob(&upload.blob.hash).expect("blob"),
        Some(upload.blob.clone())
    );
    assert_eq!(
        download(node, &kept.id, Some("ada"), false).as_deref(),
        Some(&b"hello, files"[..])
    );
    assert!(
        node.files
            .lookup("f_AAAAAAAAAAAAAAAAAAAAAA", None)
            .expect("lookup")
            .is_none()
    );
    // An image's preview.
    let image =
        keep_with(node, "general", "ada", b"an image", Some(b"a preview"), T0).expect("kept image");
    assert_eq!(
        image.image,
        Some(ImageSize {
            width: 3,
            height: 2
        })
    );
    assert_eq!(
        download(node, &image.id, None, true).as_deref(),
        Some(&b"a preview"[..])
    );
    assert_eq!(
        download(node, &image.id, None, false).as_deref(),
        Some(&b"an image"[..])
    );
    // The same bytes again: another upload of the one blob.
    let again = keep(node, "bob", b"hello, files", T0).expect("again");
    assert_ne!(again.id, kept.id);
    assert_eq!(node.files.check_room(0).map_err(|e| e.to_string()), Ok(()));
}

fn a_private_room_shows_its_files_to_its_members_only(node: &mut Node) {
    node.apply(&[
        Write::CreateRoom {
            room: "secret".into(),
            ts: 1,
            kind: RoomKind::Private,
            title: "Secret".into(),
            owner: Some("ada".into()),
        },
        Write::AddMember {
            room: "secret".into(),
            name: "ada".into(),
        },
    ]);
    let kept = keep_with(node, "secret", "ada", b"for members", None, T0).expect("kept");
    let access = |user| {
        node.files
            .lookup(&kept.id, user)
            .expect("lookup")
            .map(|f| f.1)
    };
    assert_eq!(
        access(Some("ada")),
        Some(RoomAccess::Members { member: true })
    );
    assert_eq!(
        access(Some("ADA")),
        Some(RoomAccess::Members { member: true })
    );
    assert_eq!(
        access(Some("bob")),
        Some(RoomAccess::Members { member: false })
    );
    assert_eq!(access(None), Some(RoomAccess::Members { member: false }));
    assert_eq!(
        node.files
            .room_access("nowhere", Some("ada"))
            .expect("access"),
        RoomAccess::Missing
    );
}

fn the_budget_frees_as_uploads_age_out_of_the_day(node: &mut Node) {
    keep(node, "ada", &[1; 3_000], T0).expect("first");
    keep(node, "ada", &[2; 1_000], T0 + HOUR_MS).expect("second");
    node.files
        .check_budget("ada", 1_000, T0 + 2 * HOUR_MS)
        .expect("fits");
    match node.files.check_budget("ada", 1_001, T0 + 2 * HOUR_MS) {
        Err(Refusal::OverBudget { retry_after }) => {
            assert_eq!(retry_after.as_millis(), (22 * HOUR_MS) as u128);
        }
        other => panic!("expected over budget, got {other:?}"),
    }
    // Refused when kept too, with the same wait.
    match keep(node, "ada", &[3; 2_000], T0 + 2 * HOUR_MS) {
        Err(Refusal::OverBudget { retry_after }) => {
            assert_eq!(retry_after.as_millis(), (22 * HOUR_MS) as u128);
        }
        other => panic!("expected over budget, got {other:?}"),
    }
    node.files
        .check_budget("bob", 5_000, T0)
        .expect("bob's own");
    node.files
        .check_budget("ada", 5_000, T0 + DAY_MS + HOUR_MS + 1)
        .expect("a day later");
}

fn the_store_full_is_refused_but_the_same_bytes_again_take_no_room(node: &mut Node) {
    keep(node, "ada", &[1; 4_000], T0).expect("first");
    keep(node, "bob", &[2; 4_000], T0).expect("second: exactly full");
    assert!(matches!(node.files.check_room(1), Err(Refusal::StoreFull)));
    assert!(matches!(
        keep(node, "carol", &[3; 1], T0),
        Err(Refusal::StoreFull)
    ));
    let again = keep(node, "carol", &[2; 4_000], T0).expect("stored already");
    assert_eq!(again.size, 4_000);
}

fn an_unshared_upload_leaves_after_a_day_and_its_bytes_with_it(node: &mut Node) {
    let kept = keep(node, "ada", b"hello", T0).expect("kept");
    assert_eq!(node.on_disk().len(), 1);
    assert_eq!(node.files.sweep(T0 + DAY_MS - 1).expect("sweep"), (0, 0));
    assert_eq!(node.on_disk().len(), 1, "not a day old yet");
    assert_eq!(node.files.sweep(T0 + DAY_MS + 1).expect("sweep"), (1, 1));
    assert!(node.on_disk().is_empty());
    assert!(
        node.files
            .lookup(&kept.id, Some("ada"))
            .expect("lookup")
            .is_none()
    );
    assert!(
        node.files.check_room(8_000).is_ok(),
        "its bytes count no more"
    );
}

fn a_message_shares_its_files_until_it_is_deleted(node: &mut Node) {
    let one = keep(node, "ada", b"one", T0).expect("kept");
    let two = keep_with(node, "general", "ada", b"two", Some(b"two's preview"), T0).expect("kept");
    let written = node.apply(&[message(
        "general",
        "ada",
        "c1",
        vec![two.id.clone(), one.id.clone()],
    )]);
    let Written::Appended(Appended::Stored(stored)) = &written[0] else {
        panic!("expected a stored message, got {written:?}");
    };
    assert_eq!(stored.files, vec![two.clone(), one.clone()]);
    // Shared: a day later the sweep leaves them, and they are still served.
    assert_eq!(node.files.sweep(T0 + 2 * DAY_MS).expect("sweep"), (0, 0));
    assert_eq!(
        download(node, &one.id, Some("bob"), false).as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(
        download(node, &two.id, Some("bob"), true).as_deref(),
        Some(&b"two's preview"[..])
    );
    // An upload cannot be shared twice.
    let again = node.apply(&[message("general", "ada", "c2", vec![one.id.clone()])]);
    assert!(
        matches!(&again[0], Written::Appended(Appended::Refused(_))),
        "{again:?}"
    );
    node.apply(&[delete("general", stored.seq, "ada", "d1")]);
    assert!(
        node.files
            .lookup(&one.id, Some("ada"))
            .expect("lookup")
            .is_none()
    );
    assert_eq!(node.files.sweep(T0 + 2 * DAY_MS).expect("sweep"), (0, 2));
    assert!(node.on_disk().is_empty(), "{:?}", node.on_disk());
}

fn a_start_empties_tmp_and_removes_files_no_row_names(node: &mut Node) {
    let kept = keep(node, "ada", b"kept", T0).expect("kept");
    let root = node.dir.path().join("files");
    let stray_tmp = root.join("tmp/left-by-a-crash");
    std::fs::write(&stray_tmp, b"half").expect("write");
    let orphan = root.join("blobs/ab").join("ab".repeat(32));
    std::fs::create_dir_all(orphan.parent().expect("shard")).expect("mkdir");
    std::fs::write(&orphan, b"renamed, never committed").expect("write");
    let reopened = Files::open(&node.database, node.dir.path(), limits()).expect("reopen");
    assert!(!stray_tmp.exists());
    assert!(!orphan.exists());
    let (upload, _) = reopened
        .lookup(&kept.id, Some("ada"))
        .expect("lookup")
        .expect("still there");
    assert!(
        reopened.blob_path(&upload.blob.hash).exists(),
        "what rows name stays"
    );
}

/// A node on SQLite: its data directory holds the database and the file cache.
fn node_on_sqlite(test: impl FnOnce(&mut Node)) {
    let dir = TempDir::new().expect("tempdir");
    let database = Database::sqlite(dir.path(), Durability::Process);
    let mut node = Node::open_in(&database, dir, limits());
    test(&mut node);
}

fn node_on_postgres(test: impl FnOnce(&mut Node)) {
    let pg = Postgres::start().expect("start PostgreSQL");
    let database = Database::postgres(&pg.url(), 4).expect("open PostgreSQL");
    let mut node = Node::open(&database, limits());
    test(&mut node);
}

on_both_stores!(
    sqlite: node_on_sqlite,
    postgres: node_on_postgres;
    a_kept_file_is_looked_up_and_served,
    a_private_room_shows_its_files_to_its_members_only,
    the_budget_frees_as_uploads_age_out_of_the_day,
    the_store_full_is_refused_but_the_same_bytes_again_take_no_room,
    an_unshared_upload_leaves_after_a_day_and_its_bytes_with_it,
    a_message_shares_its_files_until_it_is_deleted,
    a_start_empties_tmp_and_removes_files_no_row_names,
);

// A cluster: PostgreSQL only.

fn cluster_limits() -> FileLimits {
    FileLimits {
        bytes_per_day: 10_000_000,
        max_total_bytes: 20_000_000,
        ..limits()
    }
}

/// A node as another process would open it: a pool of its own, a data dir of its own.
fn node(pg: &Postgres, limits: FileLimits) -> Node {
    Node::open(
        &Database::postgres(&pg.url(), 4).expect("open PostgreSQL"),
        limits,
    )
}

#[test]
fn a_file_kept_through_one_node_is_served_by_another_until_swept_from_both() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let mut a = node(&pg, cluster_limits());
    let mut b = node(&pg, cluster_limits());
    // Several chunks, the last one short.
    let bytes: Vec<u8> = (0..2_600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let kept = keep_with(&a, "general", "ada", &bytes, Some(b"its preview"), T0).expect("kept");
    assert_eq!(
        a.on_disk().len(),
        2,
        "the uploading node caches what it kept"
    );
    assert!(b.on_disk().is_empty());
    assert_eq!(download(&b, &kept.id, None, false), Some(bytes.clone()));
    assert_eq!(
        download(&b, &kept.id, None, true).as_deref(),
        Some(&b"its preview"[..])
    );
    assert_eq!(b.on_disk().len(), 2, "now in b's cache");
    assert!(
        b.dir
            .path()
            .join("files/tmp")
            .read_dir()
            .expect("tmp")
            .next()
            .is_none()
    );
    // Served from the cache from now on, the same.
    assert_eq!(download(&b, &kept.id, None, false), Some(bytes.clone()));

    // Shared through a, deleted through b, swept by b: gone from the database and from
    // b's cache at once; a's cache goes at a's next sweep.
    let written = a.apply(&[message("general", "ada", "c1", vec![kept.id.clone()])]);
    let Written::Appended(Appended::Stored(stored)) = &written[0] else {
        panic!("expected a stored message, got {written:?}");
    };
    assert_eq!(b.files.sweep(T0 + 2 * DAY_MS).expect("sweep"), (0, 0));
    b.apply(&[delete("general", stored.seq, "ada", "d1")]);
    assert_eq!(b.files.sweep(T0 + 2 * DAY_MS).expect("sweep"), (0, 1));
    assert!(b.on_disk().is_empty());
    assert_eq!(a.on_disk().len(), 2);
    assert_eq!(download(&a, &kept.id, None, false), None);
    assert_eq!(a.files.sweep(T0 + 2 * DAY_MS).expect("sweep"), (0, 0));
    assert!(a.on_disk().is_empty(), "{:?}", a.on_disk());
}

/// Runs `work` on `n` nodes at once (each its own thread, pool and data dir); their
/// answers.
fn at_once<T: Send + 'static>(
    pg: &Postgres,
    n: usize,
    limits: FileLimits,
    work: impl Fn(usize, &Node) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let work = Arc::new(work);
    (0..n)
        .map(|i| {
            let node = node(pg, limits);
            let (barrier, work) = (Arc::clone(&barrier), Arc::clone(&work));
            thread::spawn(move || {
                barrier.wait();
                work(i, &node)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("node thread"))
        .collect()
}

#[test]
fn nodes_keeping_at_once_stay_within_the_budget_and_the_total() {
    let pg = Postgres::start().expect("start PostgreSQL");
    // One person on four nodes, 1500 bytes each, 5000 a day: three fit.
    let kept = at_once(&pg, 4, limits(), |i, node| {
        keep(node, "ada", &[i as u8; 1_500], T0)
    });
    let fitted = kept.iter().filter(|k| k.is_ok()).count();
    assert_eq!(fitted, 3, "{kept:?}");
    assert!(
        kept.iter()
            .any(|k| matches!(k, Err(Refusal::OverBudget { .. }))),
        "{kept:?}"
    );
    // Four people, 2000 bytes each, 3500 left of 8000: one fits.
    let kept = at_once(&pg, 4, limits(), |i, node| {
        keep(node, &format!("user{i}"), &[100 + i as u8; 2_000], T0)
    });
    assert_eq!(kept.iter().filter(|k| k.is_ok()).count(), 1, "{kept:?}");
    assert!(
        kept.iter()
            .filter(|k| k.is_err())
            .all(|k| matches!(k, Err(Refusal::StoreFull))),
        "{kept:?}"
    );
    let check = node(&pg, limits());
    check.files.check_room(1_500).expect("6500 stored of 8000");
    assert!(matches!(
        check.files.check_room(1_501),
        Err(Refusal::StoreFull)
    ));
    // The same new content through four nodes at once: one blob, four uploads.
    let kept = at_once(&pg, 4, limits(), |i, node| {
        keep(node, &format!("other{i}"), &[200; 1_000], T0)
    });
    assert!(kept.iter().all(Result::is_ok), "{kept:?}");
    check.files.check_room(500).expect("one copy counted");
}

#[test]
fn nodes_sweeping_at_once_remove_everything_once() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let first = node(&pg, cluster_limits());
    let ids: Vec<String> = (0..5u8)
        .map(|i| keep(&first, "ada", &[i; 100], T0).expect("kept").id)
        .collect();
    let swept = at_once(&pg, 3, cluster_limits(), |_, node| {
        node.files.sweep(T0 + 2 * DAY_MS).expect("sweep")
    });
    let (uploads, blobs) = swept
        .iter()
        .fold((0, 0), |(u, b), (su, sb)| (u + su, b + sb));
    assert_eq!((uploads, blobs), (5, 5), "{swept:?}");
    for id in ids {
        assert!(
            first
                .files
                .lookup(&id, Some("ada"))
                .expect("lookup")
                .is_none()
        );
    }
    assert_eq!(first.files.sweep(T0 + 2 * DAY_MS).expect("sweep"), (0, 0));
    assert!(first.on_disk().is_empty());
}

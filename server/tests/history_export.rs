//! `confab-server export` and `import` on the real binary: a store with public and
//! private rooms, replies, edits, deletions, reactions, mentions and a shared file is
//! exported; imported into a new data directory (the file's bytes from the old one)
//! and exported again, it gives the same bytes; importing again changes nothing; and
//! imported into a store that has messages of its own, the history comes after them
//! with replies still pointing at what they answer.

mod common;

use std::path::Path;

use common::{fresh_client_id, process::run_command};
use confab_server::store::{
    ChangeRequest, Durability, NewChange, NewMessage, SqliteStore, Store, Write,
    files::{Blob, FileStore, NewUpload},
};
use confab_shared::RoomKind;
use sha2::Digest;

async fn run(args: &[&str]) -> (bool, String, String) {
    let ran = run_command(args, "").await;
    (ran.ok, ran.stdout, ran.stderr)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn append(room: &str, from: &str, body: &str, ts: i64) -> NewMessage {
    NewMessage {
        room: room.into(),
        from: from.into(),
        name: format!("{from} (display)"),
        body: body.into(),
        client_id: fresh_client_id(),
        ts,
        reply_to: None,
        mentions: Vec::new(),
        files: Vec::new(),
    }
}

fn change(room: &str, by: &str, target: u64, what: ChangeRequest) -> Write {
    Write::Change(NewChange {
        room: room.into(),
        target,
        by: by.into(),
        client_id: fresh_client_id(),
        ts: 1_700_000_100_000,
        what,
    })
}

/// A store with everything an export carries.
fn fill(data_dir: &Path) {
    let mut store = SqliteStore::open(data_dir, Durability::Process).expect("open");
    let bytes = b"minutes of the meeting";
    let hash = data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(bytes));
    let blob = confab_server::files::stored_path(data_dir, &hash, false).expect("path");
    std::fs::create_dir_all(blob.parent().expect("folder")).expect("mkdir");
    std::fs::write(&blob, bytes).expect("blob");
    FileStore::open(data_dir, Durability::Process)
        .expect("file store")
        .insert_upload(&NewUpload {
            id: "f_minutes000000000000001",
            blob: &Blob {
                hash,
                size: bytes.len() as u64,
                mime: "text/plain".into(),
                image: None,
            },
            room: "general",
            uploader: "ada",
            name: "minutes.txt",
            now_ms: 1_700_000_000_000,
        })
        .expect("upload");
    let t = 1_700_000_000_000;
    store
        .apply(&[
            Write::CreateRoom {
                room: "secret-plans".into(),
                ts: t,
                kind: RoomKind::Private,
                title: "Secret plans".into(),
                owner: Some("ada".into()),
            },
            Write::AddMember {
                room: "secret-plans".into(),
                name: "ada".into(),
            },
            Write::AddMember {
                room: "secret-plans".into(),
                name: "bob".into(),
            },
            Write::Append(append("general", "ada", "hello everyone", t)),
            Write::Append(NewMessage {
                files: vec!["f_minutes000000000000001".into()],
                ..append("general", "ada", "the minutes", t + 1)
            }),
            Write::Append(NewMessage {
                reply_to: Some(1),
                mentions: vec!["ada".into()],
                ..append("general", "bob", "hi @ada, thanks", t + 2)
            }),
            Write::Append(append("general", "cy", "a typo hree", t + 3)),
            Write::Append(append("general", "cy", "something I regret", t + 4)),
            Write::Append(append(
                "secret-plans",
                "ada",
                "nobody else reads this",
                t + 5,
            )),
        ])
        .expect("messages");
    store
        .apply(&[
            change(
                "general",
                "cy",
                4,
                ChangeRequest::Edit {
                    body: "a typo here".into(),
                    mentions: vec![],
                },
            ),
            change("general", "cy", 5, ChangeRequest::Delete { any: false }),
            change("general", "bob", 1, ChangeRequest::React("👍".into())),
            change("general", "cy", 1, ChangeRequest::React("👍".into())),
            change("general", "ada", 3, ChangeRequest::React("🎉".into())),
        ])
        .expect("changes");
}

#[tokio::test]
async fn export_import_export_gives_the_same_bytes() {
    let original = tempfile::tempdir().expect("dir");
    fill(original.path());
    let work = tempfile::tempdir().expect("dir");
    let first = work.path().join("first.jsonl");
    let (ok, _, err) = run(&[
        "export",
        "--data-dir",
        path(original.path()),
        "--output",
        path(&first),
    ])
    .await;
    assert!(ok, "export failed: {err}");
    assert!(err.contains("2 rooms and 6 messages"), "{err}");
    let text = std::fs::read_to_string(&first).expect("read the export");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 8);
    let general = &lines[0];
    assert_eq!(general["type"], "room");
    assert_eq!(general["room"], "general");
    let edited = lines
        .iter()
        .find(|l| l["body"] == "a typo here")
        .expect("the edited message");
    assert!(edited["edited_at"].is_i64());
    let deleted = lines
        .iter()
        .find(|l| l["seq"] == 5 && l["room"] == "general")
        .expect("the deleted message");
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["body"], "");
    let greeted = &lines[1];
    assert_eq!(greeted["reactions"].as_array().map(Vec::len), Some(2));
    assert_eq!(lines[2]["files"][0]["name"], "minutes.txt");
    assert_eq!(lines[3]["reply_to"], 1);
    assert_eq!(lines[3]["mentions"][0], "ada");
    let secret = lines
        .iter()
        .find(|l| l["room"] == "secret-plans" && l["type"] == "room")
        .expect("the private room");
    assert_eq!(secret["kind"], "private");
    assert_eq!(secret["members"], serde_json::json!(["ada", "bob"]));

    // One room only.
    let (ok, out, err) = run(&[
        "export",
        "--data-dir",
        path(original.path()),
        "--room",
        "secret-plans",
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2);
    let (ok, _, err) = run(&[
        "export",
        "--data-dir",
        path(original.path()),
        "--room",
        "nowhere",
    ])
    .await;
    assert!(!ok && err.contains("no room"), "{err}");

    // Into a new store, the file's bytes from the old one; exported again: the same.
    let fresh = work.path().join("fresh");
    let (ok, out, err) = run(&[
        "import",
        path(&first),
        "--data-dir",
        path(&fresh),
        "--files-from",
        path(original.path()),
    ])
    .await;
    assert!(ok, "import failed: {err}");
    assert!(out.contains("6 messages imported"), "{out}");
    assert!(out.contains("1 files linked, 0 left out"), "{out}");
    let second = work.path().join("second.jsonl");
    let (ok, _, err) = run(&[
        "export",
        "--data-dir",
        path(&fresh),
        "--output",
        path(&second),
    ])
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(&second).expect("read"),
        text,
        "the round trip changed the export"
    );

    // Importing again changes nothing.
    let (ok, out, err) = run(&["import", path(&first), "--data-dir", path(&fresh)]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("0 messages imported, 6 already there"),
        "{out}"
    );
    let (ok, again, _) = run(&["export", "--data-dir", path(&fresh)]).await;
    assert!(ok);
    assert_eq!(again, text);

    // Into a store with messages of its own: after them, replies re-pointed.
    let busy = work.path().join("busy");
    {
        let mut store = SqliteStore::open(&busy, Durability::Process).expect("open");
        store
            .apply(&[
                Write::Append(append("general", "zed", "already here", 1)),
                Write::Append(append("general", "zed", "me too", 2)),
            ])
            .expect("own messages");
    }
    let (ok, out, err) = run(&["import", path(&first), "--data-dir", path(&busy)]).await;
    assert!(ok, "{err}");
    assert!(out.contains("1 left out"), "no bytes for the file: {out}");
    let (ok, merged, _) = run(&["export", "--data-dir", path(&busy), "--room", "general"]).await;
    assert!(ok);
    let merged: Vec<serde_json::Value> = merged
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let bodies: Vec<&str> = merged[1..]
        .iter()
        .map(|l| l["body"].as_str().expect("body"))
        .collect();
    assert_eq!(
        bodies,
        [
            "already here",
            "me too",
            "hello everyone",
            "the minutes",
            "hi @ada, thanks",
            "a typo here",
            ""
        ]
    );
    let hello_seq = merged[3]["seq"].clone();
    assert_eq!(
        merged[5]["reply_to"], hello_seq,
        "the reply follows its target"
    );
}

/// The export of a cluster's PostgreSQL is the same as the embedded store's for the same
/// history: the store is moved with `admin migrate-to-postgres` and both are exported.
/// Import refuses a database URL and says what to do instead.
#[tokio::test]
async fn postgres_exports_the_same_bytes() {
    let original = tempfile::tempdir().expect("dir");
    fill(original.path());
    let (ok, from_sqlite, err) = run(&["export", "--data-dir", path(original.path())]).await;
    assert!(ok, "{err}");
    let pg = common::services::Postgres::start().expect("start PostgreSQL");
    let url = pg.url();
    let (ok, _, err) = run(&[
        "admin",
        "migrate-to-postgres",
        "--data-dir",
        path(original.path()),
        "--database-url",
        &url,
    ])
    .await;
    assert!(ok, "migration failed: {err}");
    let (ok, from_postgres, err) = run(&["export", "--database-url", &url]).await;
    assert!(ok, "{err}");
    assert_eq!(from_postgres, from_sqlite);
    let (ok, one_room, _) =
        run(&["export", "--database-url", &url, "--room", "secret-plans"]).await;
    assert!(ok);
    assert_eq!(one_room.lines().count(), 2);

    let file = original.path().join("export.jsonl");
    std::fs::write(&file, &from_sqlite).expect("write");
    let (ok, _, err) = run(&["import", path(&file), "--database-url", &url]).await;
    assert!(!ok);
    assert!(err.contains("migrate-to-postgres"), "{err}");
}

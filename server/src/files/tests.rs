//! The file store on its own (no HTTP): keeping, the budget's arithmetic, the sweep's
//! timing, and what a start cleans up.

use std::path::Path;

use super::*;
use crate::store::Durability;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn limits() -> FileLimits {
    FileLimits {
        max_file_bytes: 10_000,
        bytes_per_day: 5_000,
        max_total_bytes: 8_000,
        preview: super::preview::Bounds::default(),
        preview_decodes: 1,
    }
}

fn open(dir: &Path) -> Files {
    Files::open(
        &crate::store::Database::sqlite(dir, Durability::Process),
        dir,
        limits(),
    )
    .expect("open files")
}

/// Receives `bytes` into a temporary file, as the upload handler does, and keeps it.
fn keep(files: &Files, user: &str, bytes: &[u8], now_ms: i64) -> Result<Attachment, Refusal> {
    keep_in(files, "general", user, bytes, now_ms)
}

fn keep_in(
    files: &Files,
    room: &str,
    user: &str,
    bytes: &[u8],
    now_ms: i64,
) -> Result<Attachment, Refusal> {
    use sha2::{Digest, Sha256};
    let tmp = files.temp_path();
    write_synced(&tmp, bytes).expect("write tmp");
    let blob = Blob {
        hash: data_encoding::HEXLOWER.encode(&Sha256::digest(bytes)),
        size: bytes.len() as u64,
        mime: sniff::sniff(bytes),
        image: None,
    };
    let kept = files.keep(
        Received {
            tmp: &tmp,
            thumb: None,
            blob,
            room,
            uploader: user,
            name: "f.bin",
        },
        now_ms,
    );
    let _ = std::fs::remove_file(&tmp);
    kept
}

fn blob_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("files/blobs"))
        .expect("blobs dir")
        .flatten()
        .map(|shard| std::fs::read_dir(shard.path()).map_or(0, |e| e.count()))
        .sum()
}

#[test]
fn an_unshared_upload_leaves_after_a_day_and_its_bytes_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = open(dir.path());
    let t0 = 1_000 * DAY_MS;
    let kept = keep(&files, "ada", b"hello", t0).expect("kept");
    assert!(is_upload_id(&kept.id));
    assert_eq!(blob_files(dir.path()), 1);
    assert_eq!(files.sweep(t0 + DAY_MS - 1).expect("sweep"), (0, 0));
    assert_eq!(blob_files(dir.path()), 1, "not a day old yet");
    assert_eq!(files.sweep(t0 + DAY_MS + 1).expect("sweep"), (1, 1));
    assert_eq!(blob_files(dir.path()), 0);
    assert!(
        files
            .lookup(&kept.id, Some("ada"))
            .expect("lookup")
            .is_none()
    );
}

#[test]
fn the_budget_frees_as_uploads_age_out_of_the_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = open(dir.path());
    let t0 = 1_000 * DAY_MS;
    keep(&files, "ada", &[1; 3_000], t0).expect("first");
    keep(&files, "ada", &[2; 1_000], t0 + HOUR_MS).expect("second");
    // 4000 used of 5000: 1000 more fit, 1001 wait until the first is a day old.
    files
        .check_budget("ada", 1_000, t0 + 2 * HOUR_MS)
        .expect("fits");
    match files.check_budget("ada", 1_001, t0 + 2 * HOUR_MS) {
        Err(Refusal::OverBudget { retry_after }) => {
            assert_eq!(retry_after.as_millis(), u128::from((22 * HOUR_MS) as u64));
        }
        other => panic!("expected over budget, got {other:?}"),
    }
    // Needing more than the first frees: wait for the second too.
    match files.check_budget("ada", 4_500, t0 + 2 * HOUR_MS) {
        Err(Refusal::OverBudget { retry_after }) => {
            assert_eq!(retry_after.as_millis(), u128::from((23 * HOUR_MS) as u64));
        }
        other => panic!("expected over budget, got {other:?}"),
    }
    assert!(matches!(
        keep(&files, "ada", &[3; 2_000], t0 + 2 * HOUR_MS),
        Err(Refusal::OverBudget { .. })
    ));
    // Someone else's budget is theirs; and a day later ada's is whole again.
    files.check_budget("bob", 5_000, t0).expect("bob's own");
    files
        .check_budget("ada", 5_000, t0 + DAY_MS + HOUR_MS + 1)
        .expect("a day later");
}

#[test]
fn the_store_full_is_refused_but_the_same_bytes_again_take_no_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = open(dir.path());
    let t0 = 1_000 * DAY_MS;
    keep(&files, "ada", &[1; 4_000], t0).expect("first");
    keep(&files, "bob", &[2; 4_000], t0).expect("second: exactly full");
    assert!(matches!(
        keep(&files, "carol", &[3; 1], t0),
        Err(Refusal::StoreFull)
    ));
    let again = keep(&files, "carol", &[2; 4_000], t0).expect("stored already");
    assert_eq!(again.size, 4_000);
    assert_eq!(blob_files(dir.path()), 2);
}

#[test]
fn a_start_empties_tmp_and_removes_files_no_row_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kept = {
        let files = open(dir.path());
        keep(&files, "ada", b"kept", 0).expect("kept")
    };
    let stray_tmp = dir.path().join("files/tmp/left-by-a-crash");
    std::fs::write(&stray_tmp, b"half").expect("write");
    let orphan = dir.path().join("files/blobs/ab").join("ab".repeat(32));
    std::fs::create_dir_all(orphan.parent().expect("shard")).expect("mkdir");
    std::fs::write(&orphan, b"renamed, never committed").expect("write");
    let files = open(dir.path());
    assert!(!stray_tmp.exists());
    assert!(!orphan.exists());
    let (upload, _) = files
        .lookup(&kept.id, Some("ada"))
        .expect("lookup")
        .expect("still there");
    assert!(
        files.blob_path(&upload.blob.hash).exists(),
        "what rows name stays"
    );
}

#[test]
fn ids_are_unguessable_and_checked_before_use() {
    let a = new_upload_id();
    let b = new_upload_id();
    assert_ne!(a, b);
    assert!(is_upload_id(&a) && is_upload_id(&b));
    for bad in [
        "",
        "f_",
        "f_short",
        "x_AAAAAAAAAAAAAAAAAAAAAA",
        "f_AAAAAAAAAAAAAAAAAAAA/A",
        "f_../../../../etc/passwd",
    ] {
        assert!(!is_upload_id(bad), "{bad}");
    }
}

#[test]
fn deleting_a_room_drops_its_uploads_and_the_sweep_their_bytes() {
    use crate::store::{SqliteStore, Store, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = SqliteStore::open(dir.path(), Durability::Process).expect("store");
    let files = open(dir.path());
    store
        .apply(&[Write::CreateRoom {
            room: "doomed".into(),
            ts: 0,
            kind: confab_shared::RoomKind::Public,
            title: "doomed".into(),
            owner: None,
        }])
        .expect("create");
    let t0 = 1_000 * DAY_MS;
    let doomed = keep_in(&files, "doomed", "ada", b"doomed bytes", t0).expect("kept");
    let other = keep(&files, "ada", b"other bytes", t0).expect("kept");
    store
        .apply(&[Write::DeleteRoom {
            room: "doomed".into(),
        }])
        .expect("delete");
    assert!(
        files
            .lookup(&doomed.id, Some("ada"))
            .expect("lookup")
            .is_none()
    );
    assert_eq!(files.sweep(t0 + 1).expect("sweep"), (0, 1));
    assert_eq!(blob_files(dir.path()), 1);
    assert!(
        files
            .lookup(&other.id, Some("ada"))
            .expect("lookup")
            .is_some()
    );
}

#[test]
fn every_read_of_a_message_carries_its_files_until_it_is_deleted() {
    use crate::store::{
        Appended, ChangeRequest, NewChange, NewMessage, SqliteStore, Store, Write, Written,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = SqliteStore::open(dir.path(), Durability::Process).expect("store");
    let files = open(dir.path());
    let one = keep(&files, "ada", b"one", 0).expect("kept");
    let two = keep(&files, "ada", b"two", 0).expect("kept");
    let send = Write::Append(NewMessage {
        room: "general".into(),
        from: "ada".into(),
        name: "Ada".into(),
        body: String::new(),
        client_id: "c1".into(),
        ts: 1,
        reply_to: None,
        mentions: Vec::new(),
        files: vec![two.id.clone(), one.id.clone()],
    });
    let plain = Write::Append(NewMessage {
        room: "general".into(),
        from: "ada".into(),
        name: "Ada".into(),
        body: "words".into(),
        client_id: "c2".into(),
        ts: 2,
        reply_to: None,
        mentions: Vec::new(),
        files: Vec::new(),
    });
    let written = store.apply(&[send.clone(), plain]).expect("stored");
    let expected = vec![two.clone(), one.clone()];
    let Written::Appended(Appended::Stored(stored)) = &written[0] else {
        panic!("expected a stored message, got {written:?}");
    };
    assert_eq!(stored.files, expected, "the live copy");
    let seq = stored.seq;
    let Written::Appended(Appended::Duplicate(again)) = &store.apply(&[send]).expect("again")[0]
    else {
        panic!("a repeat is a duplicate");
    };
    assert_eq!(again.files, expected, "the repeat's answer");
    let page = store
        .after("general", 0, u64::MAX, 100)
        .expect("resume page");
    assert_eq!(page.messages[0].files, expected, "a resume page");
    assert!(page.messages[1].files.is_empty());
    let history = store.before("general", u64::MAX, 100).expect("history");
    assert_eq!(history[0].files, expected, "a history page");
    store
        .apply(&[Write::Change(NewChange {
            room: "general".into(),
            target: seq,
            by: "ada".into(),
            client_id: "c3".into(),
            ts: 3,
            what: ChangeRequest::Delete { any: false },
        })])
        .expect("deleted");
    let page = store
        .after("general", 0, u64::MAX, 100)
        .expect("resume page");
    assert!(page.messages[0].deleted && page.messages[0].files.is_empty());
    assert!(
        files
            .lookup(&one.id, Some("ada"))
            .expect("lookup")
            .is_none()
    );
    assert_eq!(files.sweep(1).expect("sweep"), (0, 2));
}

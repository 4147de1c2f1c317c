//! `confab-server backup` and `restore` on the real binary: a backup taken while
//! clients keep sending, restored into a new data directory, holds every message
//! acknowledged before the backup started, the shared file's bytes and the accounts
//! (an old session cookie still works), and its database passes `PRAGMA
//! integrity_check`. Also the refusals: restoring over a running server, or into a
//! directory that holds something unless `--force` (which moves it aside), and a
//! backup with `--database-url`.

mod common;

use std::{
    net::SocketAddr,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Client, fresh_client_id, http_request,
    process::{ServerProcess, free_addr, run_command},
    sign_up,
};
use confab_shared::{Attachment, ClientMsg};

/// Runs `confab-server` with `args`; whether it succeeded, and its output.
async fn run(args: &[&str]) -> (bool, String) {
    let ran = run_command(args, "").await;
    (ran.ok, ran.output())
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A message acknowledged to a sender, and when.
#[derive(Debug, Clone)]
struct Acked {
    body: String,
    at: Instant,
    latency: Duration,
}

/// Sends numbered messages to `general` one after another, each after the ack of the
/// one before, until `stop`; records every ack.
async fn keep_sending(
    addr: SocketAddr,
    who: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) {
    let mut client = Client::in_room(addr, &who, "general").await;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        // Padded, so that the database is a few megabytes and its copy takes many steps.
        let body = format!("{who} message {n} {}", "padding-".repeat(50));
        let sent = Instant::now();
        client.send_acked("general", &body).await;
        acked.lock().expect("lock").push(Acked {
            body,
            at: Instant::now(),
            latency: sent.elapsed(),
        });
    }
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open the restored database");
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_people_chat_restores_everything_acknowledged_before_it() {
    let data = tempfile::tempdir().expect("data dir");
    let addr = free_addr();
    let limits = ["--rate-limit-per-sec", "1000", "--rate-limit-burst", "1000"];
    let server = ServerProcess::start_with(addr, data.path(), &limits).await;

    // An account, a shared file and a message that shares it.
    let cookie = sign_up(addr, "ada").await;
    let bytes = "the bytes of a file that must survive the backup";
    let upload = http_request(
        addr,
        "POST",
        "/api/files?room=general&name=notes.txt",
        &[("Cookie", &cookie)],
        Some(bytes),
    )
    .await;
    assert_eq!(upload.status, 201, "{upload:?}");
    let file: Attachment = upload.json();
    let mut ada = Client::signed_in(addr, &cookie).await;
    ada.join("general").await;
    ada.acked(ClientMsg::Send {
        room: "general".into(),
        body: "here are the notes".into(),
        client_id: fresh_client_id(),
        reply_to: None,
        files: vec![file.id.clone()],
    })
    .await;

    // People keep sending through the whole backup.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = ["bob", "cy", "dee"]
        .into_iter()
        .map(|who| {
            tokio::spawn(keep_sending(
                addr,
                who.to_owned(),
                Arc::clone(&stop),
                Arc::clone(&acked),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let backup_dir = tempfile::tempdir().expect("backup parent");
    let dest = backup_dir.path().join("confab-backup");
    let started = Instant::now();
    let before_backup: Vec<Acked> = acked.lock().expect("lock").clone();
    // Small steps, so the copy takes many of them while the writer commits.
    let (ok, out) = run(&[
        "backup",
        path(&dest),
        "--data-dir",
        path(data.path()),
        "--step-pages",
        "4",
        "--step-pause-ms",
        "2",
    ])
    .await;
    let backup_took = started.elapsed();
    assert!(ok, "backup failed: {out}");
    assert!(out.contains("integrity ok"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.expect("a sender");
    }
    let acked = acked.lock().expect("lock").clone();
    let during: Vec<&Acked> = acked
        .iter()
        .filter(|a| a.at >= started && a.at <= started + backup_took)
        .collect();
    let slowest = during.iter().map(|a| a.latency).max().unwrap_or_default();
    println!(
        "backup took {backup_took:?}; {} messages acknowledged before it, {} during it \
         (slowest ack {slowest:?}), {} in all",
        before_backup.len(),
        during.len(),
        acked.len()
    );
    assert!(before_backup.len() > 50, "the senders were sending");
    assert!(!during.is_empty(), "chat went on during the backup");
    assert!(
        slowest < Duration::from_secs(2),
        "an ack waited {slowest:?} during the backup"
    );

    // Restoring over the running server is refused.
    let (ok, out) = run(&["restore", path(&dest), "--data-dir", path(data.path())]).await;
    assert!(!ok, "restore over a running server must be refused: {out}");
    assert!(out.contains("stop the server"), "{out}");
    server.terminate().await;

    // Into a directory that holds something: refused, then moved aside with --force.
    let restored_parent = tempfile::tempdir().expect("restore parent");
    let restored = restored_parent.path().join("data");
    std::fs::create_dir_all(&restored).expect("mkdir");
    std::fs::write(restored.join("something.txt"), "older data").expect("write");
    let (ok, out) = run(&["restore", path(&dest), "--data-dir", path(&restored)]).await;
    assert!(
        !ok,
        "restore into a non-empty directory must be refused: {out}"
    );
    assert!(out.contains("--force"), "{out}");
    let (ok, out) = run(&[
        "restore",
        path(&dest),
        "--data-dir",
        path(&restored),
        "--force",
    ])
    .await;
    assert!(ok, "restore --force failed: {out}");
    let aside: Vec<_> = std::fs::read_dir(restored_parent.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("data.before-restore-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "the old directory is kept aside");
    assert!(aside[0].path().join("something.txt").is_file());
    assert!(!restored.join("something.txt").exists());
    assert_eq!(integrity(&restored.join("confab.sqlite3")), "ok");

    // A server on the restored directory has every message acknowledged before the
    // backup started, the file, and Ada's session.
    let addr = free_addr();
    let server = ServerProcess::start(addr, &restored).await;
    let mut reader = Client::named(addr, "reader").await;
    let history = reader.whole_history("general").await;
    let bodies: std::collections::HashSet<&str> = history.iter().map(|m| m.body.as_str()).collect();
    let lost: Vec<&str> = before_backup
        .iter()
        .map(|a| a.body.as_str())
        .filter(|b| !bodies.contains(b))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "history in order, once"
    );
    let shared = history
        .iter()
        .find(|m| m.body == "here are the notes")
        .expect("the message with the file");
    assert_eq!(shared.files.len(), 1);
    let download = http_request(
        addr,
        "GET",
        &format!("/api/files/{}", file.id),
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(download.status, 200, "{download:?}");
    assert_eq!(download.body, bytes);
    server.terminate().await;
}

#[tokio::test]
async fn backup_refuses_postgres_and_a_missing_store() {
    let empty = tempfile::tempdir().expect("dir");
    let dest = empty.path().join("out");
    let (ok, out) = run(&[
        "backup",
        path(&dest),
        "--database-url",
        "postgres://confab@127.0.0.1:1/confab",
    ])
    .await;
    assert!(!ok);
    assert!(out.contains("pg_dump"), "{out}");
    let (ok, out) = run(&["backup", path(&dest), "--data-dir", path(empty.path())]).await;
    assert!(!ok);
    assert!(out.contains("no Confab store"), "{out}");
    let (ok, out) = run(&["restore", path(empty.path()), "--data-dir", path(&dest)]).await;
    assert!(!ok);
    assert!(out.contains("not a Confab backup"), "{out}");
}

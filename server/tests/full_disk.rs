//! A full disk: the data directory on a small tmpfs that the test fills up. Sends are
//! refused with `unavailable` while it is full, nothing acknowledged is lost, and the
//! server recovers by itself once there is space again.
//!
//! Mounting a tmpfs needs root (or `CAP_SYS_ADMIN`); where that is not allowed the test
//! says so and passes without testing anything.

mod common;

use std::{
    collections::BTreeMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{Client, fresh_client_id, http_get, process::ServerProcess, process::free_addr};
use confab_server::store::{Durability, SqliteStore, Store};
use confab_shared::{ClientMsg, ErrorCode, ServerMsg};
use tempfile::TempDir;
use tokio::time::{Instant, sleep};

/// Size of the tmpfs: room for the empty databases and some messages.
const TMPFS_SIZE: &str = "4m";

/// A tmpfs mounted on a fresh temporary folder, unmounted when dropped (also when the
/// test fails), so no mount outlives the test.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = TempDir::new().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let umount = |lazy: bool| {
            let mut cmd = Command::new("umount");
            if lazy {
                // Still busy (a server killed a moment ago): detach it now, freed when
                // the last file closes.
                cmd.arg("-l");
            }
            cmd.arg(self.dir.path())
                .output()
                .is_ok_and(|out| out.status.success())
        };
        if !umount(false) && !umount(true) {
            eprintln!(
                "could not unmount the tmpfs at {}",
                self.dir.path().display()
            );
        }
    }
}

/// Writes a file until the file system refuses more; returns its path and size.
fn fill(dir: &Path) -> (PathBuf, u64) {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("create the filler");
    let chunk = vec![0xa5_u8; 64 * 1024];
    let mut written = 0_u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // Whatever a partial last block left: one byte at a time.
    while file.write(&[0xa5]).is_ok_and(|n| n == 1) {
        written += 1;
    }
    (path, written)
}

/// What became of one send.
#[derive(Debug, PartialEq)]
enum Outcome {
    Acked { seq: u64 },
    Refused(ErrorCode),
}

/// Sends `body` to general and waits for its acknowledgement or refusal.
async fn send(client: &mut Client, body: &str) -> (String, Outcome) {
    let client_id = fresh_client_id();
    client
        .send_json(&ClientMsg::Send {
            room: "general".into(),
            body: body.to_owned(),
            client_id: client_id.clone(),
            reply_to: None,
            files: Vec::new(),
        })
        .await;
    let outcome = match client
        .recv_until(|m| match m {
            ServerMsg::Ack { client_id: c, .. } => *c == client_id,
            ServerMsg::Error { client_id: c, .. } => c.as_deref() == Some(client_id.as_str()),
            _ => false,
        })
        .await
    {
        ServerMsg::Ack { seq, .. } => Outcome::Acked { seq },
        ServerMsg::Error { code, .. } => Outcome::Refused(code),
        _ => unreachable!("filtered above"),
    };
    (client_id, outcome)
}

#[tokio::test]
async fn a_full_disk_refuses_sends_loses_nothing_acknowledged_and_recovers_by_itself() {
    let tmpfs = match Tmpfs::mount(TMPFS_SIZE) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here ({why}); the full-disk test needs root");
            return;
        }
    };
    let data_dir = tmpfs.path().join("data");
    let addr = free_addr();
    let server = ServerProcess::start(addr, &data_dir).await;
    let mut ada = Client::in_room(addr, "ada", "general").await;
    // Acknowledged: client id → (sequence number, body).
    let mut acked = BTreeMap::new();
    let mut record = |(client_id, outcome): (String, Outcome), body: String| match outcome {
        Outcome::Acked { seq } => {
            acked.insert(client_id, (seq, body));
            true
        }
        Outcome::Refused(code) => {
            assert_eq!(code, ErrorCode::Unavailable, "a refusal says `unavailable`");
            false
        }
    };
    // Bodies of the largest size, so the log outgrows what it had before the disk
    // filled in a few messages.
    let body = |n: usize| format!("{n:05} {}", "x".repeat(3_990));

    for n in 0..5 {
        assert!(
            record(send(&mut ada, &body(n)).await, body(n)),
            "room to spare"
        );
    }

    let (filler, filled) = fill(tmpfs.path());
    let mut n = 5;
    let full_at = Instant::now();
    // The log may still have room it had allocated before: writes go on until it needs
    // more.
    let mut refused = 0;
    while refused == 0 {
        assert!(n < 500, "500 messages of 4 KB acknowledged on a full disk");
        if !record(send(&mut ada, &body(n)).await, body(n)) {
            refused += 1;
        }
        n += 1;
    }
    let accepted_while_full = n - 6;
    let first_refusal_after = full_at.elapsed();
    for _ in 0..5 {
        let sent = send(&mut ada, &body(n)).await;
        assert!(
            !record(sent, body(n)),
            "refused again while the disk is full"
        );
        n += 1;
    }
    let resp = http_get(addr, "/healthz").await;
    assert_eq!(
        (resp.status, resp.body.as_str()),
        (200, "ok"),
        "a full disk is not a dead writer"
    );

    std::fs::remove_file(&filler).expect("free the space");
    let freed_at = Instant::now();
    let recovered_after = loop {
        let sent = send(&mut ada, &body(n)).await;
        let ok = record(sent, body(n));
        n += 1;
        if ok {
            break freed_at.elapsed();
        }
        assert!(
            freed_at.elapsed() < Duration::from_secs(10),
            "still refusing 10 s after space returned"
        );
        sleep(Duration::from_millis(50)).await;
    };
    for _ in 0..5 {
        assert!(record(send(&mut ada, &body(n)).await, body(n)), "recovered");
        n += 1;
    }
    drop(ada);
    server.terminate().await;

    // Everything acknowledged is stored, gap-free, and nothing else is.
    let mut store = SqliteStore::open(&data_dir, Durability::Process).expect("open the store");
    let stored = store
        .after("general", 0, u64::MAX, 10_000)
        .expect("read the room")
        .messages;
    drop(store);
    let stored: Vec<(u64, String)> = stored.into_iter().map(|m| (m.seq, m.body)).collect();
    let mut expected: Vec<(u64, String)> = acked.values().cloned().collect();
    expected.sort_unstable();
    assert_eq!(
        stored.len(),
        expected.len(),
        "as many stored as acknowledged"
    );
    assert!(
        stored == expected,
        "exactly the acknowledged messages are stored, with the sequence numbers of their acks"
    );
    let seqs: Vec<u64> = stored.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    println!(
        "full disk ({TMPFS_SIZE} tmpfs, {filled} filler bytes): {accepted_while_full} sends \
         acknowledged on already-allocated space, first refusal after {first_refusal_after:?}; \
         {} refusals in all; first acknowledgement {recovered_after:?} after space returned; \
         {} messages acknowledged and stored",
        n - acked.len(),
        acked.len()
    );
    drop(tmpfs);
}

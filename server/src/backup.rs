//! `confab-server backup DEST` and `confab-server restore SRC`: a whole server (its
//! SQLite store, the shared files and the device cookie key) copied out while it runs,
//! and put back into a data directory while it does not.
//!
//! A backup is a directory laid out as a data directory is, plus a manifest
//! ([`MANIFEST`]): `confab.sqlite3`, `files/blobs/ab/<sha256>`, `files/thumbs/<sha256>`,
//! `device-cookie.key`. A directory, not an archive: it can be looked at, copied with
//! any tool (rsync, `tar czf` for one file), and a restore needs nothing else.
//!
//! Consistency without stopping chat. The database is copied with SQLite's online
//! backup API from a connection that holds one read transaction for the whole copy:
//! every step reads the same snapshot (taken when the backup starts), so the copy is
//! the store as it was at that instant, with every message acknowledged before it.
//! In WAL mode a reader never blocks the writer, so chat does not wait for the backup;
//! the copy goes a few pages per step with a pause between steps (`--step-pages`,
//! `--step-pause-ms`) so that it does not take the disk from the writer either. (Without
//! the held transaction SQLite would restart the copy each time another connection
//! commits, which under steady chat could be for ever.) The only cost to the server:
//! while the snapshot is held, WAL checkpoints cannot go past it, so the log grows
//! until the backup ends.
//!
//! Files are named by their content's hash and never change, so the ones the snapshot
//! names are copied after it, each checked against its hash. One whose message was
//! deleted after the snapshot may be swept from the server meanwhile (see
//! [`crate::files`]): it is reported as missing, and its message is one that is gone
//! from the server too. The copy of the database passes `PRAGMA integrity_check`
//! before the backup counts as made, and a restore checks it again.
//!
//! The backup takes the data directory's lock shared, as a server does: it runs beside
//! the server, and `admin migrate-to-postgres` or `restore` cannot start meanwhile.
//! `restore` takes it exclusively, so it refuses while a server runs there.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use rusqlite::{Connection, OpenFlags, backup::StepResult};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    files::stored_path,
    http::DEVICE_KEY_FILE,
    store::sqlite::{DB_FILE, DataDirLock, LOCK_FILE, lock_data_dir},
};

/// The backup's description, written last: a directory without it is not a backup
/// (or an unfinished one).
pub const MANIFEST: &str = "confab-backup.json";
/// The manifest format this program writes and reads.
const FORMAT: u32 = 1;

/// What a backup holds, as its manifest says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// When the snapshot was taken (ms since the Unix epoch).
    pub taken_at_ms: i64,
    /// The version of the server that made it.
    pub server_version: String,
    /// The data directory it was made from.
    pub source: String,
    /// Bytes of the database copy.
    pub database_bytes: u64,
    /// Stored files (distinct contents) and their bytes; previews are not counted.
    pub files: u64,
    pub file_bytes: u64,
    /// Files the snapshot names that the server had removed before they were copied.
    pub missing_files: Vec<String>,
    pub device_key: bool,
}

/// How gently the database is read.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub pages_per_step: u32,
    pub pause: Duration,
}

/// How long a step may keep finding the source busy before the backup gives up.
const BUSY_LIMIT: Duration = Duration::from_secs(30);

/// Copies the store of `data_dir` into `dest` (a new or empty directory). Blocking.
pub fn backup(data_dir: &Path, dest: &Path, pace: Pace) -> anyhow::Result<Manifest> {
    let source_db = data_dir.join(DB_FILE);
    ensure!(
        source_db.is_file(),
        "no Confab store in {}: {DB_FILE} is not there",
        data_dir.display()
    );
    let _lock = lock_data_dir(data_dir, false).map_err(|e| match e {
        DataDirLock::InUse(dir) => anyhow::anyhow!(
            "{} is being migrated or restored: try again when that is done",
            dir.display()
        ),
        other => other.into(),
    })?;
    ensure!(
        is_empty(dest)?,
        "{} exists and is not empty: give a new directory",
        dest.display()
    );
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;

    let partial = dest.join(format!("{DB_FILE}.partial"));
    let taken_at_ms = crate::hub::now_ms();
    copy_database(&source_db, &partial, pace)?;
    let copy = Connection::open(&partial)?;
    check_integrity(&copy).context("the copy of the database is damaged")?;
    let files = copy_files(&copy, data_dir, dest)?;
    // Closed before it is renamed: the last connection to close folds its log into
    // the file, so the backup is the one file.
    drop(copy);
    let database = dest.join(DB_FILE);
    std::fs::rename(&partial, &database)?;
    sync(&database)?;

    let device_key = copy_if_there(&data_dir.join(DEVICE_KEY_FILE), &dest.join(DEVICE_KEY_FILE))?;
    let manifest = Manifest {
        format: FORMAT,
        taken_at_ms,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        source: data_dir.display().to_string(),
        database_bytes: std::fs::metadata(&database)?.len(),
        files: files.count,
        file_bytes: files.bytes,
        missing_files: files.missing,
        device_key,
    };
    write_synced(&dest.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    sync_dir(dest)?;
    Ok(manifest)
}

/// Where a restore left things.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    /// Where the data directory's previous contents went (`--force`).
    pub moved_aside: Option<PathBuf>,
}

/// Puts the backup in `src` into `data_dir`. Refuses while a server runs on it, and
/// when it holds anything unless `force`, which moves it aside. Blocking.
pub fn restore(src: &Path, data_dir: &Path, force: bool) -> anyhow::Result<Restored> {
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(src.join(MANIFEST)).with_context(|| {
            format!("{} is not a Confab backup (no {MANIFEST})", src.display())
        })?)
        .with_context(|| format!("cannot read {}", src.join(MANIFEST).display()))?;
    ensure!(
        manifest.format == FORMAT,
        "this backup has format {}, this server reads {FORMAT}",
        manifest.format
    );
    let _lock = lock_data_dir(data_dir, true).map_err(|e| match e {
        DataDirLock::InUse(dir) => anyhow::anyhow!(
            "{} is in use (a server, a backup or a migration holds {LOCK_FILE}): stop the \
             server first",
            dir.display()
        ),
        other => other.into(),
    })?;
    let occupied = !is_empty(data_dir)?;
    if occupied && !force {
        bail!(
            "{} is not empty: restore into a new directory, or add --force to move what is \
             there aside",
            data_dir.display()
        );
    }

    // Made next to the data directory and renamed into place once whole and checked, so
    // that a failure half-way leaves the data directory as it was.
    let stamp = crate::hub::now_ms();
    let staging = sibling(data_dir, &format!("restoring-{stamp}"))?;
    let result = fill(src, &staging);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let moved_aside = if occupied {
        let aside = sibling(data_dir, &format!("before-restore-{stamp}"))?;
        std::fs::rename(data_dir, &aside).with_context(|| {
            format!(
                "cannot move {} aside to {}",
                data_dir.display(),
                aside.display()
            )
        })?;
        Some(aside)
    } else {
        // Nothing in it but the lock file.
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("cannot replace {}", data_dir.display()))?;
        None
    };
    std::fs::rename(&staging, data_dir).with_context(|| {
        format!(
            "cannot move the restored store from {} to {}",
            staging.display(),
            data_dir.display()
        )
    })?;
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(Restored {
        manifest,
        moved_aside,
    })
}

/// Copies the backup in `src` into the new directory `staging`, checking it.
fn fill(src: &Path, staging: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let database = staging.join(DB_FILE);
    std::fs::copy(src.join(DB_FILE), &database)
        .with_context(|| format!("cannot copy {}", src.join(DB_FILE).display()))?;
    sync(&database)?;
    let copy = Connection::open(&database)?;
    check_integrity(&copy).context("the backup's database is damaged")?;
    let files = copy_files(&copy, src, staging)?;
    if !files.missing.is_empty() {
        tracing::warn!(
            "{} files named by the backup are not in it (see its manifest)",
            files.missing.len()
        );
    }
    drop(copy);
    copy_if_there(&src.join(DEVICE_KEY_FILE), &staging.join(DEVICE_KEY_FILE))?;
    sync_dir(staging)?;
    Ok(())
}

/// Copies the database at `from` into a new file `to` through the online backup API,
/// from one snapshot (see the module documentation).
fn copy_database(from: &Path, to: &Path, pace: Pace) -> anyhow::Result<()> {
    let source = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", from.display()))?;
    source.pragma_update(None, "query_only", true)?;
    source.busy_timeout(Duration::from_secs(5))?;
    // The snapshot every step reads: held until the copy is done.
    source.execute_batch("BEGIN")?;
    source.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))?;
    let mut target = Connection::open(to)?;
    {
        let copy = rusqlite::backup::Backup::new(&source, &mut target)?;
        let pages = i32::try_from(pace.pages_per_step.max(1)).unwrap_or(i32::MAX);
        let mut busy_since = None;
        loop {
            match copy.step(pages)? {
                StepResult::Done => break,
                StepResult::More => busy_since = None,
                StepResult::Busy | StepResult::Locked => {
                    let since = *busy_since.get_or_insert_with(std::time::Instant::now);
                    ensure!(
                        since.elapsed() < BUSY_LIMIT,
                        "the database stayed busy for {BUSY_LIMIT:?}"
                    );
                }
                // A variant added by a later rusqlite: treat it as busy.
                _ => {}
            }
            std::thread::sleep(pace.pause);
        }
    }
    source.execute_batch("COMMIT")?;
    Ok(())
}

fn check_integrity(conn: &Connection) -> anyhow::Result<()> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let said: Vec<String> = stmt
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    ensure!(
        said == ["ok"],
        "PRAGMA integrity_check says: {}",
        said.join("; ")
    );
    Ok(())
}

/// What [`copy_files`] copied.
struct Copied {
    count: u64,
    bytes: u64,
    missing: Vec<String>,
}

/// Copies the files the database `db` names from the data directory (or backup)
/// `from` into `to`, each checked against its hash and size.
fn copy_files(db: &Connection, from: &Path, to: &Path) -> anyhow::Result<Copied> {
    let mut stmt = db.prepare("SELECT hash, size FROM file_blobs ORDER BY hash")?;
    let blobs: Vec<(String, u64)> = stmt
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut copied = Copied {
        count: 0,
        bytes: 0,
        missing: Vec::new(),
    };
    for (hash, size) in blobs {
        if copy_stored(from, to, &hash, size)? {
            copied.count += 1;
            copied.bytes += size;
        } else {
            copied.missing.push(hash);
        }
    }
    Ok(copied)
}

/// Copies the bytes of blob `hash` (and its preview, if there is one) from the files of
/// the data directory or backup `from` into those of `to`, checked: `false` when `from`
/// does not have them.
pub fn copy_stored(from: &Path, to: &Path, hash: &str, size: u64) -> anyhow::Result<bool> {
    let (Some(source), Some(target)) =
        (stored_path(from, hash, false), stored_path(to, hash, false))
    else {
        bail!("{hash:?} is not a SHA-256");
    };
    match copy_checked(&source, &target, hash, size) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot copy {}", source.display())),
    }
    if let (Some(source), Some(target)) =
        (stored_path(from, hash, true), stored_path(to, hash, true))
    {
        copy_if_there(&source, &target)?;
    }
    Ok(true)
}

/// Copies `from` to `to` (making its folder), checking that the bytes have `size` and
/// hash to `hash`, and flushes it.
fn copy_checked(from: &Path, to: &Path, hash: &str, size: u64) -> std::io::Result<()> {
    let mut input = std::fs::File::open(from)?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut output = std::fs::File::create(to)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        total += n as u64;
    }
    output.sync_all()?;
    let got = data_encoding::HEXLOWER.encode(&hasher.finalize());
    if total != size || got != hash {
        let _ = std::fs::remove_file(to);
        return Err(std::io::Error::other(format!(
            "{} is damaged: {total} bytes hashing to {got}, the store says {size} bytes \
             hashing to {hash}",
            from.display()
        )));
    }
    Ok(())
}

/// Copies `from` to `to` if it exists; whether it did.
fn copy_if_there(from: &Path, to: &Path) -> anyhow::Result<bool> {
    match std::fs::read(from) {
        Ok(bytes) => {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            write_synced(to, &bytes)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", from.display())),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn sync(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    Ok(())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Whether `dir` is missing or holds nothing but a data directory's lock file.
fn is_empty(dir: &Path) -> anyhow::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        if entry?.file_name() != LOCK_FILE {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `<dir>.<suffix>`, next to `dir`.
fn sibling(dir: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let Some(name) = dir.file_name() else {
        bail!("{} has no name to put a copy next to", dir.display());
    };
    let mut name = name.to_owned();
    name.push(format!(".{suffix}"));
    Ok(dir.with_file_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sibling_is_named_after_the_directory() {
        assert_eq!(
            sibling(Path::new("/srv/confab"), "x").expect("named"),
            PathBuf::from("/srv/confab.x")
        );
        assert!(sibling(Path::new("/"), "x").is_err());
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let from = dir.path().join("a");
        std::fs::write(&from, b"hello").expect("write");
        let hash = data_encoding::HEXLOWER.encode(&Sha256::digest(b"hello"));
        let to = dir.path().join("out/b");
        copy_checked(&from, &to, &hash, 5).expect("a sound file copies");
        assert_eq!(std::fs::read(&to).expect("read"), b"hello");
        std::fs::write(&from, b"hellO").expect("write");
        assert!(copy_checked(&from, &dir.path().join("c"), &hash, 5).is_err());
        assert!(!dir.path().join("c").exists(), "no damaged copy is left");
    }
}

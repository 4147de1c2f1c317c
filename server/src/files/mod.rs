//! Shared files on disk: where their bytes live, the limits on them, and the sweep that
//! removes what nothing references any more. The HTTP side (streaming an upload in,
//! serving a download) is [`crate::http`]'s `files` module; the rows are
//! [`crate::store::files`].
//!
//! Layout, under `<data dir>/files/`:
//! - `blobs/ab/<sha256>`: each distinct content once, named by its hash (so the same
//!   bytes uploaded twice take the space of one), in 256 folders by the hash's first
//!   byte so no folder grows huge;
//! - `thumbs/<sha256>`: the PNG preview of an image;
//! - `tmp/`: uploads on their way in. Emptied when the server starts: whatever is there
//!   then belonged to a request that never finished.
//!
//! An upload becomes durable in this order: its temporary file is written and fsynced,
//! renamed into `blobs/` (and the folder fsynced), and only then its row committed. A
//! crash before the commit leaves a file no row names, which [`Files::open`] removes; a
//! row never names a file that is not there. "A blob is put in place and its row
//! inserted" and "a blob's rows are dropped and its file unlinked" both happen under one
//! lock (the store's mutex), so a sweep can never unlink a file that an upload has just
//! adopted. The reads of each request (a download's lookup, the checks before an upload)
//! use a second, read-only connection and never wait behind that lock.

pub mod name;
pub mod preview;
pub mod sniff;

use std::{
    collections::HashSet,
    io::Write,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use confab_shared::Attachment;
use rand_core::{OsRng, RngCore};

use crate::store::{
    Durability, StoreError,
    files::{Blob, FileStore, NewUpload, RoomAccess, StoredUpload},
};

/// Upload ids start with this.
pub const ID_PREFIX: &str = "f_";
/// Random bytes in an upload id (128 bits: unguessable), base64url: 22 characters.
const ID_BYTES: usize = 16;
const ID_CHARS: usize = 22;

/// How long an upload may wait to be shared before the sweep removes it.
pub const UNSHARED_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The window of the per-person upload budget.
pub const BUDGET_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The limits on files, from their flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Largest file (`--max-file-bytes`).
    pub max_file_bytes: u64,
    /// Bytes one person may upload in any 24 hours (`--upload-bytes-per-day`).
    pub bytes_per_day: u64,
    /// Bytes of every stored file together (`--max-files-bytes`).
    pub max_total_bytes: u64,
    /// What decoding an image for its preview may take.
    pub preview: preview::Bounds,
    /// Previews decoded at once (`--preview-decodes`): each may take up to
    /// `preview.max_decode_bytes` and a core.
    pub preview_decodes: usize,
}

/// Whether `id` is shaped like an id [`Files`] hands out: checked before any lookup, so
/// nothing else reaches a query or a path.
pub fn is_upload_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX).is_some_and(|rest| {
        rest.len() == ID_CHARS
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

fn new_upload_id() -> String {
    let mut bytes = [0u8; ID_BYTES];
    OsRng.fill_bytes(&mut bytes);
    format!(
        "{ID_PREFIX}{}",
        data_encoding::BASE64URL_NOPAD.encode(&bytes)
    )
}

/// Whether a SHA-256 in hex is what it should be (it names files).
fn is_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A file fully received into `tmp/`, with what is known of it, waiting to be kept.
#[derive(Debug)]
pub struct Received<'a> {
    pub tmp: &'a Path,
    /// The preview written next to it in `tmp/`, if one was made.
    pub thumb: Option<&'a Path>,
    pub blob: Blob,
    pub room: &'a str,
    pub uploader: &'a str,
    pub name: &'a str,
}

/// Why an upload was not kept.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("over the daily upload budget")]
    OverBudget { retry_after: Duration },
    #[error("the file store is full")]
    StoreFull,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
}

/// The files of one server.
pub struct Files {
    blobs: PathBuf,
    thumbs: PathBuf,
    tmp: PathBuf,
    pub limits: FileLimits,
    /// The rows, behind the lock that also orders file moves against unlinks (see the
    /// module documentation).
    store: Mutex<FileStore>,
    /// A second connection for the reads of every request (downloads, the checks before
    /// an upload), so they do not wait behind a keep's fsyncs or a sweep's unlinks.
    reads: Mutex<FileStore>,
    /// Turns to decode an image for its preview (`FileLimits::preview_decodes`).
    pub previews: tokio::sync::Semaphore,
}

impl Files {
    /// Opens the files of the store in `data_dir` (creating the folders), empties
    /// `tmp/` and removes blob files no row names. Blocking.
    pub fn open(
        data_dir: &Path,
        durability: Durability,
        limits: FileLimits,
    ) -> Result<Self, StoreError> {
        let root = data_dir.join("files");
        let files = Self {
            blobs: root.join("blobs"),
            thumbs: root.join("thumbs"),
            tmp: root.join("tmp"),
            limits,
            store: Mutex::new(FileStore::open(data_dir, durability)?),
            reads: Mutex::new(FileStore::open_reader(data_dir, durability)?),
            previews: tokio::sync::Semaphore::new(limits.preview_decodes.max(1)),
        };
        for dir in [&files.blobs, &files.thumbs, &files.tmp] {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.clone(),
                source,
            })?;
        }
        files.empty_tmp();
        files.remove_orphans()?;
        Ok(files)
    }

    fn store(&self) -> MutexGuard<'_, FileStore> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reads(&self) -> MutexGuard<'_, FileStore> {
        self.reads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn empty_tmp(&self) {
        let Ok(entries) = std::fs::read_dir(&self.tmp) else {
            return;
        };
        for entry in entries.flatten() {
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!("cannot remove {}: {e}", entry.path().display());
            }
        }
    }

    /// Removes files in `blobs/` and `thumbs/` that no blob row names: left by a crash
    /// between a rename and its commit, or by an unlink that failed after a sweep.
    fn remove_orphans(&self) -> Result<(), StoreError> {
        let store = self.store();
        let known: HashSet<String> = store.blob_hashes()?;
        let mut removed = 0usize;
        let mut remove_unknown = |dir: &Path| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !name.to_str().is_some_and(|n| known.contains(n)) {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
                    }
                }
            }
        };
        remove_unknown(&self.thumbs);
        if let Ok(shards) = std::fs::read_dir(&self.blobs) {
            for shard in shards.flatten() {
                remove_unknown(&shard.path());
            }
        }
        if removed > 0 {
            tracing::info!("removed {removed} stored files no upload names");
        }
        Ok(())
    }

    /// A new, empty temporary file for an upload. Its name is random: two uploads never
    /// share one, and it says nothing.
    pub fn temp_path(&self) -> PathBuf {
        let mut bytes = [0u8; 12];
        OsRng.fill_bytes(&mut bytes);
        self.tmp.join(data_encoding::BASE64URL_NOPAD.encode(&bytes))
    }

    /// Where the bytes with this hash live.
    pub fn blob_path(&self, hash: &str) -> PathBuf {
        let shard = hash.get(..2).unwrap_or("00");
        self.blobs.join(shard).join(hash)
    }

    /// Where the preview of the image with this hash lives.
    pub fn thumb_path(&self, hash: &str) -> PathBuf {
        self.thumbs.join(hash)
    }

    /// Who may see `room` (see [`RoomAccess`]).
    pub fn room_access(&self, room: &str, user: Option<&str>) -> Result<RoomAccess, StoreError> {
        self.reads().room_access(room, user)
    }

    /// The upload `id` and, for `user`, the access rule of its room.
    pub fn lookup(
        &self,
        id: &str,
        user: Option<&str>,
    ) -> Result<Option<(StoredUpload, RoomAccess)>, StoreError> {
        let store = self.reads();
        let Some(upload) = store.upload(id)? else {
            return Ok(None);
        };
        let access = store.room_access(&upload.room, user)?;
        Ok(Some((upload, access)))
    }

    /// The blob with this hash, if stored (a hint: a sweep may remove it before use).
    pub fn known_blob(&self, hash: &str) -> Result<Option<Blob>, StoreError> {
        self.reads().blob(hash)
    }

    /// Whether `user` may upload `bytes` more now (`now_ms`): `Err` with how long until
    /// enough of their last day's uploads leave the window.
    pub fn check_budget(&self, user: &str, bytes: u64, now_ms: i64) -> Result<(), Refusal> {
        let store = self.reads();
        budget(&store, self.limits.bytes_per_day, user, bytes, now_ms)
    }

    /// Whether `bytes` more would fit the store.
    pub fn check_room(&self, bytes: u64) -> Result<(), Refusal> {
        let total = self.reads().total_bytes()?;
        if total.saturating_add(bytes) > self.limits.max_total_bytes {
            return Err(Refusal::StoreFull);
        }
        Ok(())
    }

    /// Keeps a received file: checks the budget and the store's room again (other
    /// uploads may have finished meanwhile), puts its bytes (and preview) in place unless
    /// the same content is stored already, and commits its rows. Blocking. On success
    /// the temporary files are gone; on failure the caller's guard removes them.
    pub fn keep(&self, received: Received<'_>, now_ms: i64) -> Result<Attachment, Refusal> {
        let hash = &received.blob.hash;
        if !is_hash(hash) {
            return Err(Refusal::Io(std::io::Error::other("not a SHA-256")));
        }
        let mut store = self.store();
        let size = received.blob.size;
        budget(
            &store,
            self.limits.bytes_per_day,
            received.uploader,
            size,
            now_ms,
        )?;
        let existing = store.blob(hash)?;
        let new = existing.is_none();
        if new && store.total_bytes()?.saturating_add(size) > self.limits.max_total_bytes {
            return Err(Refusal::StoreFull);
        }
        let blob = match existing {
            Some(blob) => blob,
            None => {
                let mut blob = received.blob.clone();
                match received.thumb {
                    Some(thumb) => rename_durably(thumb, &self.thumb_path(hash))?,
                    // No preview made (or it could not be): a plain file, whatever its type.
                    None => blob.image = None,
                }
                let path = self.blob_path(hash);
                let placed = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| rename_durably(received.tmp, &path));
                if let Err(e) = placed {
                    // The preview may be in place already; nothing names it.
                    let _ = std::fs::remove_file(self.thumb_path(hash));
                    return Err(e.into());
                }
                blob
            }
        };
        let id = new_upload_id();
        let inserted = store.insert_upload(&NewUpload {
            id: &id,
            blob: &blob,
            room: received.room,
            uploader: received.uploader,
            name: received.name,
            now_ms,
        });
        if let Err(e) = inserted {
            if new {
                // Nothing names them: take them back out while the lock is still held.
                let _ = std::fs::remove_file(self.blob_path(hash));
                let _ = std::fs::remove_file(self.thumb_path(hash));
            }
            return Err(e.into());
        }
        Ok(Attachment {
            id,
            name: received.name.to_owned(),
            size: blob.size,
            mime: blob.mime,
            image: blob.image,
        })
    }

    /// One sweep (blocking): uploads never shared for [`UNSHARED_TTL`] go, budget entries
    /// older than [`BUDGET_WINDOW`] go, and the bytes and previews of every blob no
    /// upload names leave the disk. Returns how many uploads and blobs went.
    pub fn sweep(&self, now_ms: i64) -> Result<(usize, usize), StoreError> {
        let mut store = self.store();
        let day = i64::try_from(UNSHARED_TTL.as_millis()).unwrap_or(i64::MAX);
        let window = i64::try_from(BUDGET_WINDOW.as_millis()).unwrap_or(i64::MAX);
        let swept = store.sweep(now_ms.saturating_sub(day), now_ms.saturating_sub(window))?;
        for hash in &swept.blobs {
            if !is_hash(hash) {
                continue;
            }
            for path in [self.blob_path(hash), self.thumb_path(hash)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    // Its row is gone: the next start removes the file (see `open`).
                    Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
                }
            }
        }
        Ok((swept.uploads, swept.blobs.len()))
    }
}

/// The budget rule (see [`Files::check_budget`]).
fn budget(
    store: &FileStore,
    per_day: u64,
    user: &str,
    bytes: u64,
    now_ms: i64,
) -> Result<(), Refusal> {
    let window = i64::try_from(BUDGET_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let usage = store.usage_since(user, now_ms.saturating_sub(window))?;
    let used: u64 = usage.iter().map(|(_, b)| b).sum();
    let Some(over) = used
        .saturating_add(bytes)
        .checked_sub(per_day)
        .filter(|o| *o > 0)
    else {
        return Ok(());
    };
    // Wait until the oldest uploads that together free `over` bytes leave the window.
    let mut freed = 0u64;
    let mut at = None;
    for (ts, b) in &usage {
        freed += b;
        if freed >= over {
            at = Some(ts.saturating_add(window));
            break;
        }
    }
    let retry_after = match at {
        Some(at) => Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0).max(1_000)),
        // More than the whole budget at once: never, but say a day rather than nothing.
        None => BUDGET_WINDOW,
    };
    Err(Refusal::OverBudget { retry_after })
}

/// Renames `from` to `to` and flushes the folder of `to`, so that the rename survives a
/// crash before anything that depends on it is committed. `from` has been fsynced.
fn rename_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)?;
    if let Some(dir) = to.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes `bytes` to a new file at `path` and fsyncs it (for previews).
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Runs the sweep every `interval` until the task is dropped.
pub async fn sweep_every(files: std::sync::Arc<Files>, interval: Duration) {
    let mut every = tokio::time::interval(interval.max(Duration::from_secs(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let files = std::sync::Arc::clone(&files);
        let now = crate::hub::now_ms();
        match tokio::task::spawn_blocking(move || files.sweep(now)).await {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((uploads, blobs))) => {
                tracing::info!("file sweep: {uploads} unshared uploads and {blobs} files removed");
            }
            Ok(Err(e)) => tracing::warn!("file sweep failed (will retry): {e}"),
            Err(e) => tracing::warn!("file sweep failed (will retry): {e}"),
        }
    }
}

#[cfg(test)]
mod tests;

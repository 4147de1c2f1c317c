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
//! That is the whole story on one server (SQLite). In a cluster (PostgreSQL, see
//! [`crate::store::postgres::files`]) the bytes are in the database, with the rows, and
//! `blobs/` and `thumbs/` are this node's cache of them: an upload through this node
//! puts its file there once its transaction has committed, a download of a blob not
//! there fetches it into `tmp/` and renames it into place (no fsync: a crash loses
//! only cache). Named by their content's hash, cached files never go stale; the sweep
//! of every node removes those whose blob row is gone. What follows is the SQLite
//! mode's.
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

use sha2::{Digest, Sha256};

use crate::store::{
    Database, StoreError,
    files::{Blob, FileStore, NewUpload, RoomAccess, StoredUpload},
    postgres::files::{KeepRules, Kept, PgFiles},
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

/// Where a server on SQLite keeps the bytes of blob `hash` under its `data_dir`, or
/// their preview (`thumb`): `None` for a hash that is not one (it would name another
/// file). For `admin migrate-to-postgres`, which reads them without opening [`Files`].
pub fn stored_path(data_dir: &Path, hash: &str, thumb: bool) -> Option<PathBuf> {
    let root = data_dir.join("files");
    is_hash(hash).then(|| {
        if thumb {
            root.join("thumbs").join(hash)
        } else {
            sharded(&root.join("blobs"), hash)
        }
    })
}

/// `blobs/ab/<hash>`: 256 folders by the hash's first byte.
fn sharded(blobs: &Path, hash: &str) -> PathBuf {
    let shard = hash.get(..2).unwrap_or("00");
    blobs.join(shard).join(hash)
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

/// The files of one server, or of one node of a cluster.
pub struct Files {
    blobs: PathBuf,
    thumbs: PathBuf,
    tmp: PathBuf,
    pub limits: FileLimits,
    backend: Backend,
    /// Turns to decode an image for its preview (`FileLimits::preview_decodes`).
    pub previews: tokio::sync::Semaphore,
}

/// Where the rows (and, in a cluster, the bytes) are.
enum Backend {
    /// One server: the rows in SQLite, the bytes in `blobs/`, their only copy.
    Sqlite(Box<Local>),
    /// A node of a cluster: rows and bytes in PostgreSQL, `blobs/` a cache. Its locks
    /// are the database's (see [`crate::store::postgres::files`]).
    Postgres(PgFiles),
}

/// The SQLite connections of one server's files.
struct Local {
    /// The rows, behind the lock that also orders file moves against unlinks (see the
    /// module documentation).
    store: Mutex<FileStore>,
    /// A second connection for the reads of every request (downloads, the checks before
    /// an upload), so they do not wait behind a keep's fsyncs or a sweep's unlinks.
    reads: Mutex<FileStore>,
}

impl Files {
    /// Opens the files of `database`, with `data_dir` for the bytes (SQLite) or their
    /// cache (PostgreSQL), creating the folders; empties `tmp/` and removes the files
    /// in `blobs/` and `thumbs/` no blob row names. Blocking.
    pub fn open(
        database: &Database,
        data_dir: &Path,
        limits: FileLimits,
    ) -> Result<Self, StoreError> {
        let root = data_dir.join("files");
        let backend = match database {
            Database::Sqlite {
                data_dir,
                durability,
            } => Backend::Sqlite(Box::new(Local {
                store: Mutex::new(FileStore::open(data_dir, *durability)?),
                reads: Mutex::new(FileStore::open_reader(data_dir, *durability)?),
            })),
            Database::Postgres(pool) => Backend::Postgres(PgFiles::new(pool.clone())),
        };
        let files = Self {
            blobs: root.join("blobs"),
            thumbs: root.join("thumbs"),
            tmp: root.join("tmp"),
            limits,
            backend,
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

    /// Removes files in `blobs/` and `thumbs/` that no blob row names: on one server,
    /// left by a crash between a rename and its commit, or by an unlink that failed
    /// after a sweep; in a cluster, the cache of blobs a sweep (of any node) removed.
    ///
    /// The files are listed before the rows are read. In a cluster nothing orders this
    /// against other nodes, but that is enough: a file put in place after the listing
    /// is not looked at, and one listed whose row is gone when the rows are read is
    /// cache of nothing. (Should the same content be uploaded again in between, the
    /// file goes and is fetched again when asked for.) Returns how many went.
    fn remove_orphans(&self) -> Result<usize, StoreError> {
        let removed = match &self.backend {
            Backend::Sqlite(local) => {
                // Under the store's lock: no upload is between its rename and commit.
                let store = lock(&local.store);
                let found = self.stored_files();
                let known = store.blob_hashes()?;
                remove_unknown(found, &known)
            }
            Backend::Postgres(pg) => {
                let found = self.stored_files();
                let mut names: Vec<String> = found
                    .iter()
                    .map(|(name, _)| name.clone())
                    .filter(|name| is_hash(name))
                    .collect();
                names.sort_unstable();
                names.dedup();
                let mut known = HashSet::new();
                for batch in names.chunks(1_000) {
                    known.extend(pg.known(batch)?);
                }
                remove_unknown(found, &known)
            }
        };
        if removed > 0 {
            tracing::info!("removed {removed} stored files no upload names");
        }
        Ok(removed)
    }

    /// Every file in `thumbs/` and `blobs/`, with its name (empty if not UTF-8: a name
    /// that is no hash is nothing of ours).
    fn stored_files(&self) -> Vec<(String, PathBuf)> {
        let mut found = Vec::new();
        let mut list = |dir: &Path| {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_str().unwrap_or_default().to_owned();
                found.push((name, entry.path()));
            }
        };
        list(&self.thumbs);
        if let Ok(shards) = std::fs::read_dir(&self.blobs) {
            for shard in shards.flatten() {
                list(&shard.path());
            }
        }
        found
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
        sharded(&self.blobs, hash)
    }

    /// Where the preview of the image with this hash lives.
    pub fn thumb_path(&self, hash: &str) -> PathBuf {
        self.thumbs.join(hash)
    }

    /// Who may see `room` (see [`RoomAccess`]).
    pub fn room_access(&self, room: &str, user: Option<&str>) -> Result<RoomAccess, StoreError> {
        match &self.backend {
            Backend::Sqlite(local) => lock(&local.reads).room_access(room, user),
            Backend::Postgres(pg) => pg.room_access(room, user),
        }
    }

    /// The upload `id` and, for `user`, the access rule of its room.
    pub fn lookup(
        &self,
        id: &str,
        user: Option<&str>,
    ) -> Result<Option<(StoredUpload, RoomAccess)>, StoreError> {
        match &self.backend {
            Backend::Sqlite(local) => {
                let store = lock(&local.reads);
                let Some(upload) = store.upload(id)? else {
                    return Ok(None);
                };
                let access = store.room_access(&upload.room, user)?;
                Ok(Some((upload, access)))
            }
            Backend::Postgres(pg) => pg.lookup(id, user),
        }
    }

    /// The blob with this hash, if stored (a hint: a sweep may remove it before use).
    pub fn known_blob(&self, hash: &str) -> Result<Option<Blob>, StoreError> {
        match &self.backend {
            Backend::Sqlite(local) => lock(&local.reads).blob(hash),
            Backend::Postgres(pg) => pg.blob(hash),
        }
    }

    /// Whether `user` may upload `bytes` more now (`now_ms`): `Err` with how long until
    /// enough of their last day's uploads leave the window.
    pub fn check_budget(&self, user: &str, bytes: u64, now_ms: i64) -> Result<(), Refusal> {
        let since = now_ms.saturating_sub(window_ms());
        let usage = match &self.backend {
            Backend::Sqlite(local) => lock(&local.reads).usage_since(user, since)?,
            Backend::Postgres(pg) => pg.usage_since(user, since)?,
        };
        budget(&usage, self.limits.bytes_per_day, bytes, now_ms)
    }

    /// Whether `bytes` more would fit the store.
    pub fn check_room(&self, bytes: u64) -> Result<(), Refusal> {
        let total = match &self.backend {
            Backend::Sqlite(local) => lock(&local.reads).total_bytes()?,
            Backend::Postgres(pg) => pg.total_bytes()?,
        };
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
        if !is_hash(&received.blob.hash) {
            return Err(Refusal::Io(std::io::Error::other("not a SHA-256")));
        }
        let (id, blob) = match &self.backend {
            Backend::Sqlite(local) => {
                self.keep_on_disk(&mut lock(&local.store), &received, now_ms)?
            }
            Backend::Postgres(pg) => self.keep_in_database(pg, &received, now_ms)?,
        };
        Ok(Attachment {
            id,
            name: received.name.to_owned(),
            size: blob.size,
            mime: blob.mime,
            image: blob.image,
        })
    }

    /// [`Files::keep`] on one server: the order the module documentation describes,
    /// under the store's lock.
    fn keep_on_disk(
        &self,
        store: &mut FileStore,
        received: &Received<'_>,
        now_ms: i64,
    ) -> Result<(String, Blob), Refusal> {
        let hash = &received.blob.hash;
        let size = received.blob.size;
        let usage = store.usage_since(received.uploader, now_ms.saturating_sub(window_ms()))?;
        budget(&usage, self.limits.bytes_per_day, size, now_ms)?;
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
        Ok((id, blob))
    }

    /// [`Files::keep`] in a cluster: the bytes go into the database with the rows, in
    /// one transaction that checks the limits (see [`PgFiles::keep`]); once it has
    /// committed, the received files become this node's cache of them.
    fn keep_in_database(
        &self,
        pg: &PgFiles,
        received: &Received<'_>,
        now_ms: i64,
    ) -> Result<(String, Blob), Refusal> {
        let mut blob = received.blob.clone();
        if received.thumb.is_none() {
            // No preview made (or it could not be): a plain file, whatever its type.
            blob.image = None;
        }
        let id = new_upload_id();
        let rules = KeepRules {
            per_day: self.limits.bytes_per_day,
            usage_since_ms: now_ms.saturating_sub(window_ms()),
            max_total_bytes: self.limits.max_total_bytes,
        };
        let upload = NewUpload {
            id: &id,
            blob: &blob,
            room: received.room,
            uploader: received.uploader,
            name: received.name,
            now_ms,
        };
        match pg.keep(&upload, received.tmp, received.thumb, rules)? {
            Kept::Stored {
                blob,
                new,
                created_at,
            } => {
                // Cache: a failure costs a fetch later, not the upload.
                self.cache(received.tmp, &self.blob_path(&blob.hash), created_at);
                if let (true, Some(thumb)) = (new, received.thumb) {
                    self.cache(thumb, &self.thumb_path(&blob.hash), created_at);
                }
                Ok((id, blob))
            }
            Kept::OverBudget(usage) => {
                budget(&usage, self.limits.bytes_per_day, blob.size, now_ms)?;
                // The store counted over, this arithmetic not: the store's word stands.
                Err(Refusal::OverBudget {
                    retry_after: Duration::from_secs(1),
                })
            }
            Kept::StoreFull => Err(Refusal::StoreFull),
        }
    }

    /// Moves `from` to `to` in this node's cache unless something is there already
    /// (the same content, by its name), dated `created_at` (see [`PgFiles::read`]).
    fn cache(&self, from: &Path, to: &Path, created_at: i64) {
        if to.exists() {
            return;
        }
        let placed = date(from, created_at)
            .and_then(|()| to.parent().map_or(Ok(()), std::fs::create_dir_all))
            .and_then(|()| std::fs::rename(from, to));
        if let Err(e) = placed {
            tracing::warn!("cannot cache {}: {e}", to.display());
        }
    }

    /// Where the bytes of `blob` (or its preview, `thumb`) are when finding them needs
    /// nothing but a path: on one server. `None` in a cluster, where [`Files::local`]
    /// (blocking) finds them in the cache or fetches them.
    pub fn on_disk(&self, blob: &Blob, thumb: bool) -> Option<PathBuf> {
        match &self.backend {
            Backend::Sqlite(_) if is_hash(&blob.hash) => Some(if thumb {
                self.thumb_path(&blob.hash)
            } else {
                self.blob_path(&blob.hash)
            }),
            _ => None,
        }
    }

    /// Where the bytes of `blob` (or its preview, `thumb`) are on this node's disk, to
    /// be served from: on one server, where they live; in a cluster, in the cache,
    /// fetched from the database first if they are not there yet. `None` when they are
    /// not in the database (any more). Blocking.
    pub fn local(&self, blob: &Blob, thumb: bool) -> Result<Option<PathBuf>, StoreError> {
        if !is_hash(&blob.hash) {
            return Ok(None);
        }
        let path = if thumb {
            self.thumb_path(&blob.hash)
        } else {
            self.blob_path(&blob.hash)
        };
        let Backend::Postgres(pg) = &self.backend else {
            return Ok(Some(path));
        };
        if path.exists() {
            return Ok(Some(path));
        }
        let tmp = self.temp_path();
        let fetched = self.fetch(pg, blob, thumb, &tmp).and_then(|created_at| {
            let Some(created_at) = created_at else {
                return Ok(false);
            };
            date(&tmp, created_at)
                .and_then(|()| path.parent().map_or(Ok(()), std::fs::create_dir_all))
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(StoreError::Io)?;
            Ok(true)
        });
        if !matches!(fetched, Ok(true)) {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(fetched?.then_some(path))
    }

    /// Reads blob `blob` (or its preview) from the database into `tmp`, checking the
    /// content against its size and hash: `None` if it was not there, else when its
    /// row was made.
    fn fetch(
        &self,
        pg: &PgFiles,
        blob: &Blob,
        thumb: bool,
        tmp: &Path,
    ) -> Result<Option<i64>, StoreError> {
        let file = std::fs::File::create(tmp).map_err(StoreError::Io)?;
        let mut out = Hashing {
            out: std::io::BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            size: 0,
        };
        let Some(created_at) = pg.read(&blob.hash, thumb, &mut out)? else {
            return Ok(None);
        };
        out.out.flush().map_err(StoreError::Io)?;
        if !thumb {
            let hash = data_encoding::HEXLOWER.encode(&out.hasher.finalize());
            if out.size != blob.size || hash != blob.hash {
                return Err(StoreError::Io(std::io::Error::other(format!(
                    "blob {} read from the database is not its content",
                    blob.hash
                ))));
            }
        }
        Ok(Some(created_at))
    }

    /// One sweep (blocking): uploads never shared for [`UNSHARED_TTL`] go, budget entries
    /// older than [`BUDGET_WINDOW`] go, and the bytes and previews of every blob no
    /// upload names leave the disk. Returns how many uploads and blobs went.
    ///
    /// In a cluster the database's part runs on one node at a time (the others find
    /// it running and skip it: see [`PgFiles::sweep`]), and every node then removes
    /// from its cache the blobs no row names, whichever node's sweep removed them.
    pub fn sweep(&self, now_ms: i64) -> Result<(usize, usize), StoreError> {
        let day = i64::try_from(UNSHARED_TTL.as_millis()).unwrap_or(i64::MAX);
        let unshared_before = now_ms.saturating_sub(day);
        let usage_before = now_ms.saturating_sub(window_ms());
        let store = match &self.backend {
            Backend::Sqlite(local) => &local.store,
            Backend::Postgres(pg) => {
                let swept = pg.sweep(unshared_before, usage_before)?.unwrap_or_default();
                self.remove_orphans()?;
                return Ok((swept.uploads, swept.blobs.len()));
            }
        };
        let mut store = lock(store);
        let swept = store.sweep(unshared_before, usage_before)?;
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

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    out: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Sets the modification time of the file at `path` to `ms` after the epoch: what
/// `ServeFile` makes a download's `ETag` and `Last-Modified` of.
fn date(path: &Path, ms: i64) -> std::io::Result<()> {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(at)
}

fn lock(store: &Mutex<FileStore>) -> MutexGuard<'_, FileStore> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes the files of `found` whose names are not in `known`; how many went.
fn remove_unknown(found: Vec<(String, PathBuf)>, known: &HashSet<String>) -> usize {
    let mut removed = 0;
    for (name, path) in found {
        if known.contains(&name) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
        }
    }
    removed
}

fn window_ms() -> i64 {
    i64::try_from(BUDGET_WINDOW.as_millis()).unwrap_or(i64::MAX)
}

/// The budget rule (see [`Files::check_budget`]), over `usage`: what the person
/// uploaded in the window, oldest first.
fn budget(usage: &[(i64, u64)], per_day: u64, bytes: u64, now_ms: i64) -> Result<(), Refusal> {
    let window = window_ms();
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
    for (ts, b) in usage {
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

//! Files as stored in PostgreSQL, for a cluster: the counterpart of
//! [`crate::store::files::FileStore`], with the bytes too. Every node must be able to
//! serve every file, and the rule is "PostgreSQL for everything durable", so a
//! blob's content is in `file_chunks` (1 MiB rows) and an image's preview in
//! `file_thumbs`, both inserted in the transaction that inserts the blob's row and
//! deleted with it (`ON DELETE CASCADE`). Each node keeps a cache of the blobs on its
//! own disk ([`crate::files`]); this module only reads and writes the database.
//!
//! Several nodes run the same operations at once, so each rule is enforced by a lock
//! the database holds until the commit:
//! - the daily budget: an upload's transaction takes a transaction-level advisory lock
//!   on its uploader (`BUDGET_LOCKS`) before it sums their usage, so two uploads by
//!   one person on two nodes are checked one after the other, each seeing the other's
//!   usage;
//! - the store's total: a new blob's row is inserted first, then a single advisory lock
//!   (`TOTAL_LOCK`) is taken and the sum of every blob (its own included) compared
//!   with the limit. Whoever holds the lock sees every blob committed before it, and
//!   keeps the lock until its own commit, so the sum is never exceeded. The lock is
//!   taken after the chunks are written: uploads send their bytes in parallel and only
//!   queue for the short check and commit;
//! - the same content uploaded twice at once: the second insert of the blob's row
//!   waits on the first's primary key until it commits, then finds it stored;
//! - an upload adopting a blob the sweep is removing: the upload takes `FOR KEY SHARE`
//!   on the existing row (as its foreign key would), the sweep takes `FOR UPDATE SKIP
//!   LOCKED` on the rows it means to delete. So the sweep skips a blob being adopted,
//!   and an upload that finds its row locked by the sweep waits, finds it gone, and
//!   stores the content anew;
//! - a message claiming an upload and the sweep removing it as never shared: the claim
//!   locks the upload's row, the sweep skips locked rows (see [`PgFiles::sweep`]);
//! - the sweep itself runs on one node at a time (an advisory lock tried, not waited
//!   for: the others have nothing left to do). It never waits for a row lock, so it
//!   cannot deadlock with an upload or a writer.

use std::{
    collections::HashSet,
    io::{Read, Write},
    path::Path,
};

use confab_shared::ImageSize;
use postgres::{GenericClient, IsolationLevel, Row};

use super::{PgPool, as_sql, from_sql};
use crate::store::{
    StoreError,
    files::{Blob, NewUpload, RoomAccess, StoredUpload, Swept},
};

/// Bytes of one row of `file_chunks`: small enough that a row is one allocation of
/// reasonable size on both ends, large enough that a file is few rows.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Advisory lock keys, in the two-key form (a space apart from the migrations' one-key
/// lock). A person's budget: this, and a hash of their username (two people may share
/// a hash; they then queue for nothing worse than each other).
const BUDGET_LOCKS: i32 = 0x6669_6c65; // "file"
/// The store's total and the sweep: this, and which.
const FILES_LOCKS: i32 = 0x6669_6c66;
const TOTAL_LOCK: i32 = 1;
const SWEEP_LOCK: i32 = 2;

/// How many times an upload retries adopting a blob that a sweep removed under it.
const ADOPT_TRIES: usize = 3;

/// The rules [`PgFiles::keep`] checks inside its transaction.
#[derive(Debug, Clone, Copy)]
pub struct KeepRules {
    /// Bytes one person may upload since `usage_since_ms`.
    pub per_day: u64,
    pub usage_since_ms: i64,
    /// Bytes of every blob together.
    pub max_total_bytes: u64,
}

/// What became of [`PgFiles::keep`]. Refusals roll back everything it wrote.
#[derive(Debug, PartialEq, Eq)]
pub enum Kept {
    /// Stored: the blob as stored (an earlier upload's when the content was known),
    /// and when its row was made (see [`PgFiles::read`]).
    Stored {
        blob: Blob,
        new: bool,
        created_at: i64,
    },
    /// Over the budget: the uploader's usage in the window, oldest first, to say when
    /// enough of it leaves.
    OverBudget(Vec<(i64, u64)>),
    StoreFull,
}

/// The files' side of a node's PostgreSQL pool. Blocking, like every pooled use.
#[derive(Clone, Debug)]
pub struct PgFiles {
    pool: PgPool,
}

impl PgFiles {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Whether `room` exists and, if it is not public, whether `user` is a member.
    pub fn room_access(&self, room: &str, user: Option<&str>) -> Result<RoomAccess, StoreError> {
        room_access(&mut *self.pool.get()?, room, user)
    }

    /// The upload `id` with its blob, and the access rule of its room for `user`, read
    /// in one snapshot.
    pub fn lookup(
        &self,
        id: &str,
        user: Option<&str>,
    ) -> Result<Option<(StoredUpload, RoomAccess)>, StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let row = tx.query_opt(
            "SELECT b.hash, b.size, b.mime, b.width, b.height, u.id, u.room, u.name
             FROM file_uploads u JOIN file_blobs b ON b.hash = u.blob WHERE u.id = $1",
            &[&id],
        )?;
        let Some(row) = row else {
            return Ok(None);
        };
        let upload = StoredUpload {
            blob: row_to_blob(&row)?,
            id: row.try_get(5)?,
            room: row.try_get(6)?,
            name: row.try_get(7)?,
        };
        let access = room_access(&mut tx, &upload.room, user)?;
        tx.commit()?;
        Ok(Some((upload, access)))
    }

    /// The blob with this hash, if it is stored.
    pub fn blob(&self, hash: &str) -> Result<Option<Blob>, StoreError> {
        self.pool
            .get()?
            .query_opt(
                "SELECT hash, size, mime, width, height FROM file_blobs WHERE hash = $1",
                &[&hash],
            )?
            .map(|row| row_to_blob(&row))
            .transpose()
    }

    /// Bytes of every stored blob.
    pub fn total_bytes(&self) -> Result<u64, StoreError> {
        total_bytes(&mut *self.pool.get()?)
    }

    /// What `user` uploaded since `since_ms`, oldest first: (when, bytes).
    pub fn usage_since(&self, user: &str, since_ms: i64) -> Result<Vec<(i64, u64)>, StoreError> {
        usage_since(&mut *self.pool.get()?, user, since_ms)
    }

    /// Which of `hashes` are stored blobs.
    pub fn known(&self, hashes: &[String]) -> Result<HashSet<String>, StoreError> {
        let rows = self.pool.get()?.query(
            "SELECT hash FROM file_blobs WHERE hash = ANY($1)",
            &[&hashes],
        )?;
        rows.iter()
            .map(|row| Ok(row.try_get(0)?))
            .collect::<Result<_, StoreError>>()
    }

    /// Records an upload in one transaction, checking `rules` under the locks the
    /// module documentation describes: the budget, then the blob (its row, its
    /// content read from `content` in chunks and its preview from `thumb`, unless the
    /// same content is stored already), then the total, then the upload and its usage.
    pub fn keep(
        &self,
        upload: &NewUpload<'_>,
        content: &Path,
        thumb: Option<&Path>,
        rules: KeepRules,
    ) -> Result<Kept, StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(lower($2)))",
            &[&BUDGET_LOCKS, &upload.uploader],
        )?;
        let usage = usage_since(&mut tx, upload.uploader, rules.usage_since_ms)?;
        let used: u64 = usage.iter().map(|(_, b)| b).sum();
        if used.saturating_add(upload.blob.size) > rules.per_day {
            return Ok(Kept::OverBudget(usage));
        }
        let mut stored = None;
        for _ in 0..ADOPT_TRIES {
            let inserted = tx.execute(
                "INSERT INTO file_blobs (hash, size, mime, width, height, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hash) DO NOTHING",
                &[
                    &upload.blob.hash,
                    &as_sql(upload.blob.size),
                    &upload.blob.mime,
                    &upload.blob.image.map(|i| i64::from(i.width)),
                    &upload.blob.image.map(|i| i64::from(i.height)),
                    &upload.now_ms,
                ],
            )?;
            if inserted == 1 {
                write_chunks(&mut tx, &upload.blob.hash, content)?;
                if let (Some(thumb), Some(_)) = (thumb, upload.blob.image) {
                    let bytes = std::fs::read(thumb).map_err(StoreError::Io)?;
                    tx.execute(
                        "INSERT INTO file_thumbs (hash, bytes) VALUES ($1, $2)",
                        &[&upload.blob.hash, &bytes],
                    )?;
                }
                stored = Some((upload.blob.clone(), true, upload.now_ms));
                break;
            }
            // Stored already: hold it against a sweep until this commits. No row means
            // a sweep removed it since the insert looked: store it anew.
            let row = tx.query_opt(
                "SELECT hash, size, mime, width, height, created_at FROM file_blobs
                 WHERE hash = $1 FOR KEY SHARE",
                &[&upload.blob.hash],
            )?;
            if let Some(row) = row {
                stored = Some((row_to_blob(&row)?, false, row.try_get(5)?));
                break;
            }
        }
        let Some((blob, new, created_at)) = stored else {
            return Err(StoreError::Io(std::io::Error::other(
                "a sweep kept removing the blob being stored",
            )));
        };
        if new {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&FILES_LOCKS, &TOTAL_LOCK],
            )?;
            // A new statement: it sees every blob committed before the lock was ours.
            if total_bytes(&mut tx)? > rules.max_total_bytes {
                return Ok(Kept::StoreFull);
            }
        }
        tx.execute(
            "INSERT INTO file_uploads (id, blob, room, uploader, name, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &upload.id,
                &blob.hash,
                &upload.room,
                &upload.uploader,
                &upload.name,
                &upload.now_ms,
            ],
        )?;
        tx.execute(
            "INSERT INTO file_usage (username, ts, bytes) VALUES ($1, $2, $3)",
            &[&upload.uploader, &upload.now_ms, &as_sql(blob.size)],
        )?;
        tx.commit()?;
        Ok(Kept::Stored {
            blob,
            new,
            created_at,
        })
    }

    /// Writes the content of blob `hash` (or its preview, `thumb`) into `out`, read in
    /// one snapshot; `None` if there is no such blob (or preview), else when the blob's
    /// row was made: every node dates its copy with it, so that the `ETag` and
    /// `Last-Modified` a download gets are the same from every node. The caller checks
    /// what it got against the hash.
    pub fn read(
        &self,
        hash: &str,
        thumb: bool,
        out: &mut impl Write,
    ) -> Result<Option<i64>, StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let Some(blob) = tx.query_opt(
            "SELECT created_at, (SELECT count(*) FROM file_chunks c WHERE c.hash = b.hash)
             FROM file_blobs b WHERE hash = $1",
            &[&hash],
        )?
        else {
            return Ok(None);
        };
        let created_at: i64 = blob.try_get(0)?;
        let chunks: i64 = blob.try_get(1)?;
        if thumb {
            let Some(row) =
                tx.query_opt("SELECT bytes FROM file_thumbs WHERE hash = $1", &[&hash])?
            else {
                return Ok(None);
            };
            out.write_all(row.try_get::<_, &[u8]>(0)?)
                .map_err(StoreError::Io)?;
            tx.commit()?;
            return Ok(Some(created_at));
        }
        // One chunk per query: never more than a chunk in memory, whatever the file.
        let chunk = tx.prepare("SELECT bytes FROM file_chunks WHERE hash = $1 AND n = $2")?;
        for n in 0..chunks {
            let n = i32::try_from(n)
                .map_err(|_| StoreError::Io(std::io::Error::other("too many chunks")))?;
            let row = tx.query_one(&chunk, &[&hash, &n])?;
            out.write_all(row.try_get::<_, &[u8]>(0)?)
                .map_err(StoreError::Io)?;
        }
        tx.commit()?;
        Ok(Some(created_at))
    }

    /// Removes uploads never shared made before `unshared_before_ms`, usage older than
    /// `usage_before_ms`, and the blobs (their bytes with them) no upload references:
    /// on one node at a time; `None` when another node is sweeping.
    pub fn sweep(
        &self,
        unshared_before_ms: i64,
        usage_before_ms: i64,
    ) -> Result<Option<Swept>, StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        let ours: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, $2)",
                &[&FILES_LOCKS, &SWEEP_LOCK],
            )?
            .try_get(0)?;
        if !ours {
            return Ok(None);
        }
        // A message claiming an upload locks its row first (PgStore's `claimable`):
        // the sweep skips it rather than wait (the next sweep finds it shared), and a
        // claim that comes after finds the row locked here, waits, and finds it gone.
        // Never waiting, the sweep cannot deadlock with a writer.
        let uploads = tx.execute(
            "DELETE FROM file_uploads WHERE id IN (
                 SELECT id FROM file_uploads WHERE seq IS NULL AND created_at < $1
                 FOR UPDATE SKIP LOCKED
             )",
            &[&unshared_before_ms],
        )?;
        tx.execute("DELETE FROM file_usage WHERE ts < $1", &[&usage_before_ms])?;
        // Lock the unreferenced blobs no upload is adopting (see the module
        // documentation), then delete those still unreferenced with a fresh snapshot:
        // an upload committed between the two statements is seen, and none can
        // commit after the locks.
        let candidates: Vec<String> = tx
            .query(
                "SELECT hash FROM file_blobs b
                 WHERE NOT EXISTS (SELECT 1 FROM file_uploads u WHERE u.blob = b.hash)
                 FOR UPDATE SKIP LOCKED",
                &[],
            )?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let blobs: Vec<String> = if candidates.is_empty() {
            Vec::new()
        } else {
            tx.query(
                "DELETE FROM file_blobs b WHERE hash = ANY($1)
                   AND NOT EXISTS (SELECT 1 FROM file_uploads u WHERE u.blob = b.hash)
                 RETURNING hash",
                &[&candidates],
            )?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?
        };
        tx.commit()?;
        Ok(Some(Swept {
            uploads: usize::try_from(uploads).unwrap_or(usize::MAX),
            blobs,
        }))
    }
}

fn room_access(
    client: &mut impl GenericClient,
    room: &str,
    user: Option<&str>,
) -> Result<RoomAccess, StoreError> {
    let Some(row) = client.query_opt("SELECT kind FROM rooms WHERE name = $1", &[&room])? else {
        return Ok(RoomAccess::Missing);
    };
    if row.try_get::<_, &str>(0)? == "public" {
        return Ok(RoomAccess::Public);
    }
    let Some(user) = user else {
        return Ok(RoomAccess::Members { member: false });
    };
    let member = client
        .query_opt(
            "SELECT 1 FROM room_members WHERE room = $1 AND name = $2",
            &[&room, &user],
        )?
        .is_some();
    Ok(RoomAccess::Members { member })
}

fn total_bytes(client: &mut impl GenericClient) -> Result<u64, StoreError> {
    let total: i64 = client
        .query_one("SELECT COALESCE(SUM(size), 0)::BIGINT FROM file_blobs", &[])?
        .try_get(0)?;
    Ok(from_sql(total))
}

fn usage_since(
    client: &mut impl GenericClient,
    user: &str,
    since_ms: i64,
) -> Result<Vec<(i64, u64)>, StoreError> {
    client
        .query(
            "SELECT ts, bytes FROM file_usage WHERE username = $1 AND ts > $2 ORDER BY ts",
            &[&user, &since_ms],
        )?
        .iter()
        .map(|row| Ok((row.try_get(0)?, from_sql(row.try_get(1)?))))
        .collect()
}

/// Inserts the content of `content` as the chunks of blob `hash`.
fn write_chunks(
    tx: &mut postgres::Transaction<'_>,
    hash: &str,
    content: &Path,
) -> Result<(), StoreError> {
    let insert = tx.prepare("INSERT INTO file_chunks (hash, n, bytes) VALUES ($1, $2, $3)")?;
    let mut file = std::fs::File::open(content).map_err(StoreError::Io)?;
    let mut chunk = vec![0u8; CHUNK_BYTES];
    for n in 0i32.. {
        let len = read_full(&mut file, &mut chunk).map_err(StoreError::Io)?;
        if len == 0 {
            break;
        }
        tx.execute(&insert, &[&hash, &n, &&chunk[..len]])?;
        if len < CHUNK_BYTES {
            break;
        }
    }
    Ok(())
}

/// Reads until `buf` is full or the file ends; how many bytes it read.
fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn row_to_blob(row: &Row) -> Result<Blob, StoreError> {
    let width: Option<i64> = row.try_get(3)?;
    let height: Option<i64> = row.try_get(4)?;
    let size = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
    Ok(Blob {
        hash: row.try_get(0)?,
        size: from_sql(row.try_get(1)?),
        mime: row.try_get(2)?,
        image: size(width)
            .zip(size(height))
            .map(|(width, height)| ImageSize { width, height }),
    })
}

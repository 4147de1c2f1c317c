//! Files as stored: the SQL half of [`crate::files`], which owns the bytes on disk and
//! the rules (limits, who may see what).
//!
//! Three tables (see the migration in [`super::sqlite`]): `file_blobs`, one row per
//! distinct content, named by its SHA-256; `file_uploads`, one row per upload (its
//! unguessable id, the room and person it belongs to, and the message that shared it
//! once one has); `file_usage`, what each person uploaded when, for the rolling daily
//! budget. An upload's own connection, like the accounts': uploads must not queue
//! behind the message writer's group commits, and a file's bytes are never in SQLite.
//!
//! Sharing an upload (claiming it for a message) and dropping it with its message or
//! room happen in the writer's transaction instead ([`claim`], and the deletions in
//! `sqlite.rs` and `sqlite/changes.rs`), so a message and its files are one commit.

use std::{collections::HashMap, path::Path};

use confab_shared::{Attachment, ChatMessage, ImageSize};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    Durability, StoreError,
    sqlite::{open_migrated, snapshots::seq_span},
};

/// What is known of a blob (one distinct content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// SHA-256 of the content, lower-case hex.
    pub hash: String,
    pub size: u64,
    /// Media type sniffed from its first bytes.
    pub mime: String,
    /// Set when the server could decode it as an image (and made a preview).
    pub image: Option<ImageSize>,
}

/// An upload as a download needs it: where its bytes are and which room rules it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUpload {
    pub id: String,
    pub room: String,
    pub name: String,
    pub blob: Blob,
}

/// A new upload, its blob in place on disk.
#[derive(Debug, Clone)]
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub blob: &'a Blob,
    pub room: &'a str,
    pub uploader: &'a str,
    pub name: &'a str,
    pub now_ms: i64,
}

/// What a sweep removed from the database: the blobs whose files should now leave the
/// disk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub uploads: usize,
    pub blobs: Vec<String>,
}

/// Who may see a room, as the file endpoints need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAccess {
    /// No such room.
    Missing,
    Public,
    /// A private room or direct conversation: `member` says whether the person asking
    /// is one of its members.
    Members {
        member: bool,
    },
}

pub struct FileStore {
    conn: Connection,
}

impl FileStore {
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        Ok(Self {
            conn: open_migrated(data_dir, durability)?,
        })
    }

    /// A connection for reads only: a write through it is an error.
    pub fn open_reader(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let store = Self::open(data_dir, durability)?;
        store.conn.pragma_update(None, "query_only", true)?;
        Ok(store)
    }

    /// Whether `room` exists and, if it is not public, whether `user` is a member.
    pub fn room_access(&self, room: &str, user: Option<&str>) -> Result<RoomAccess, StoreError> {
        let kind: Option<String> = self
            .conn
            .prepare_cached("SELECT kind FROM rooms WHERE name = ?1")?
            .query_row([room], |row| row.get(0))
            .optional()?;
        let Some(kind) = kind else {
            return Ok(RoomAccess::Missing);
        };
        if kind == "public" {
            return Ok(RoomAccess::Public);
        }
        let Some(user) = user else {
            return Ok(RoomAccess::Members { member: false });
        };
        let member = self
            .conn
            .prepare_cached("SELECT 1 FROM room_members WHERE room = ?1 AND name = ?2")?
            .query_row(params![room, user], |_| Ok(()))
            .optional()?
            .is_some();
        Ok(RoomAccess::Members { member })
    }

    /// The blob with this hash, if it is stored.
    pub fn blob(&self, hash: &str) -> Result<Option<Blob>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT hash, size, mime, width, height FROM file_blobs WHERE hash = ?1",
            )?
            .query_row([hash], row_to_blob)
            .optional()?)
    }

    /// The upload with this id, with its blob.
    pub fn upload(&self, id: &str) -> Result<Option<StoredUpload>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT b.hash, b.size, b.mime, b.width, b.height, u.id, u.room, u.name
                 FROM file_uploads u JOIN file_blobs b ON b.hash = u.blob WHERE u.id = ?1",
            )?
            .query_row([id], |row| {
                Ok(StoredUpload {
                    blob: row_to_blob(row)?,
                    id: row.get(5)?,
                    room: row.get(6)?,
                    name: row.get(7)?,
                })
            })
            .optional()?)
    }

    /// Bytes of every stored blob.
    pub fn total_bytes(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(SUM(size), 0) FROM file_blobs")?
            .query_row([], |row| row.get(0))?)
    }

    /// What `user` uploaded since `since_ms`, oldest first: (when, bytes).
    pub fn usage_since(&self, user: &str, since_ms: i64) -> Result<Vec<(i64, u64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ts, bytes FROM file_usage WHERE user = ?1 AND ts > ?2 ORDER BY ts",
        )?;
        let rows = stmt.query_map(params![user, since_ms], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records an upload in one transaction: its blob (unless that content is stored
    /// already), the upload, and the bytes against its uploader's budget. The caller has
    /// put the blob's file in place first and holds the files' lock, so no sweep can
    /// unlink it between.
    pub fn insert_upload(&mut self, upload: &NewUpload<'_>) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let image = upload.blob.image;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO file_blobs (hash, size, mime, width, height, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            upload.blob.hash,
            as_sql(upload.blob.size),
            upload.blob.mime,
            image.map(|i| i.width),
            image.map(|i| i.height),
            upload.now_ms
        ])?;
        tx.prepare_cached(
            "INSERT INTO file_uploads (id, blob, room, uploader, name, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            upload.id,
            upload.blob.hash,
            upload.room,
            upload.uploader,
            upload.name,
            upload.now_ms
        ])?;
        tx.prepare_cached("INSERT INTO file_usage (user, ts, bytes) VALUES (?1, ?2, ?3)")?
            .execute(params![
                upload.uploader,
                upload.now_ms,
                as_sql(upload.blob.size)
            ])?;
        tx.commit()?;
        Ok(())
    }

    /// Removes uploads never shared made before `unshared_before_ms`, usage older than
    /// `usage_before_ms`, and the rows of blobs no upload references any more, whose
    /// hashes it returns: the caller unlinks their files (holding the files' lock, so no
    /// upload can adopt one of them in between).
    pub fn sweep(
        &mut self,
        unshared_before_ms: i64,
        usage_before_ms: i64,
    ) -> Result<Swept, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let uploads = tx
            .prepare_cached("DELETE FROM file_uploads WHERE seq IS NULL AND created_at < ?1")?
            .execute([unshared_before_ms])?;
        tx.prepare_cached("DELETE FROM file_usage WHERE ts < ?1")?
            .execute([usage_before_ms])?;
        let blobs: Vec<String> = tx
            .prepare_cached(
                "DELETE FROM file_blobs WHERE NOT EXISTS
                     (SELECT 1 FROM file_uploads u WHERE u.blob = file_blobs.hash)
                 RETURNING hash",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok(Swept { uploads, blobs })
    }

    /// Every blob hash stored, for removing files that have no row (left by a crash
    /// between putting a file in place and committing its row).
    pub fn blob_hashes(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT hash FROM file_blobs")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn row_to_blob(row: &rusqlite::Row<'_>) -> rusqlite::Result<Blob> {
    let width: Option<u32> = row.get(3)?;
    let height: Option<u32> = row.get(4)?;
    Ok(Blob {
        hash: row.get(0)?,
        size: row.get(1)?,
        mime: row.get(2)?,
        image: width
            .zip(height)
            .map(|(width, height)| ImageSize { width, height }),
    })
}

fn as_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Why [`claim`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotClaimable;

/// Checks, inside the writer's transaction, that every id in `ids` is an upload of
/// `uploader` to `room` not shared yet.
pub(super) fn claimable(
    conn: &Connection,
    room: &str,
    uploader: &str,
    ids: &[String],
) -> Result<Result<(), NotClaimable>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM file_uploads
         WHERE id = ?1 AND room = ?2 AND uploader = ?3 AND seq IS NULL",
    )?;
    for id in ids {
        if stmt
            .query_row(params![id, room, uploader], |_| Ok(()))
            .optional()?
            .is_none()
        {
            return Ok(Err(NotClaimable));
        }
    }
    Ok(Ok(()))
}

/// Marks the uploads `ids` (checked by [`claimable`]) as shared by message `seq` of
/// `room`, in their order.
pub(super) fn claim(
    conn: &Connection,
    room: &str,
    seq: u64,
    ids: &[String],
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE file_uploads SET seq = ?3, pos = ?4 WHERE id = ?1 AND room = ?2 AND seq IS NULL",
    )?;
    for (pos, id) in ids.iter().enumerate() {
        stmt.execute(params![id, room, as_sql(seq), as_sql(pos as u64)])?;
    }
    Ok(())
}

/// Fills in the files of `messages`, all of `room`, with one read: the uploads that
/// messages between the lowest and the highest `seq` shared.
pub(super) fn attach(
    conn: &Connection,
    room: &str,
    messages: &mut [ChatMessage],
) -> Result<(), StoreError> {
    let Some((lo, hi)) = seq_span(messages) else {
        return Ok(());
    };
    let mut stmt = conn.prepare_cached(
        "SELECT u.seq, u.id, u.name, b.size, b.mime, b.width, b.height
         FROM file_uploads u JOIN file_blobs b ON b.hash = u.blob
         WHERE u.room = ?1 AND u.seq BETWEEN ?2 AND ?3
         ORDER BY u.seq, u.pos",
    )?;
    let rows = stmt.query_map(params![room, as_sql(lo), as_sql(hi)], |row| {
        let width: Option<u32> = row.get(5)?;
        let height: Option<u32> = row.get(6)?;
        Ok((
            row.get::<_, u64>(0)?,
            Attachment {
                id: row.get(1)?,
                name: row.get(2)?,
                size: row.get(3)?,
                mime: row.get(4)?,
                image: width
                    .zip(height)
                    .map(|(width, height)| ImageSize { width, height }),
            },
        ))
    })?;
    let mut by_seq: HashMap<u64, Vec<Attachment>> = HashMap::new();
    for row in rows {
        let (seq, attachment) = row?;
        by_seq.entry(seq).or_default().push(attachment);
    }
    if by_seq.is_empty() {
        return Ok(());
    }
    for message in messages.iter_mut() {
        if let Some(files) = by_seq.remove(&message.seq) {
            message.files = files;
        }
    }
    Ok(())
}

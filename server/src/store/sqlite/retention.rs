//! Retention on the embedded store (`--retain-days`, see [`crate::retention`]): finding
//! the messages sent before a cutoff and deleting them, with everything that hangs on
//! them, a small batch per transaction.
//!
//! Finding them never blocks the message writer: it reads `(id, ts)` pages in read
//! transactions, which WAL lets run beside the writer's commits. There is no index on
//! `ts` (it would cost every message one more B-tree insert, on the hot path, to speed
//! up an hourly walk), so a pass walks the table by id.
//!
//! Deleting does take the write lock, one short `BEGIN IMMEDIATE` transaction per batch:
//! the writer waits in SQLite's busy handler for at most one batch, whose size the
//! caller bounds. Per message it takes out, in that transaction: its words from the
//! search index (exactly as indexed, or FTS5's external-content index would be corrupt),
//! its reactions, mentions, files (their bytes leave the disk at the next file sweep,
//! if no other message shares them), the log entries that changed it, and the row. The
//! room keeps the highest `seq` it pruned (`rooms.pruned_seq`), so its numbering goes on
//! from where it was even when every message in it got old.

use std::path::Path;

use rusqlite::{Connection, params};

use super::{connect, open_migrated};
use crate::store::{Durability, StoreError};

/// A connection of its own for retention.
pub struct Pruner {
    conn: Connection,
}

/// Messages a page of the walk looks at (reads only).
const WALK_PAGE: i64 = 5_000;

impl Pruner {
    /// Opens the store in `data_dir` (migrating it if needed, as a server starting would).
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        drop(open_migrated(data_dir, durability)?);
        Ok(Self {
            conn: connect(data_dir, durability)?,
        })
    }

    /// From a page of messages with ids above `after_id` (in id order), those sent
    /// before `before_ms`, and the last id the page looked at (`None`: the walk is over).
    pub fn old_after(
        &self,
        after_id: i64,
        before_ms: i64,
    ) -> Result<(Vec<i64>, Option<i64>), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, ts FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![after_id, WALK_PAGE], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut old = Vec::new();
        let mut last = None;
        for row in rows {
            let (id, ts) = row?;
            last = Some(id);
            if ts < before_ms {
                old.push(id);
            }
        }
        Ok((old, last))
    }

    /// Deletes the messages `ids` that are still there and still sent before
    /// `before_ms`, in one transaction; how many went.
    pub fn delete(&mut self, ids: &[i64], before_ms: i64) -> Result<usize, StoreError> {
        let ids = serde_json::to_string(ids).map_err(|e| StoreError::Io(e.into()))?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS pruning (
                 id   INTEGER PRIMARY KEY,
                 room TEXT NOT NULL,
                 seq  INTEGER NOT NULL
             );
             DELETE FROM temp.pruning;",
        )?;
        let deleted = tx
            .prepare_cached(
                "INSERT INTO temp.pruning (id, room, seq)
                 SELECT id, room, seq FROM messages
                 WHERE id IN (SELECT value FROM json_each(?1)) AND ts < ?2",
            )?
            .execute(params![ids, before_ms])?;
        for statement in [
            // Out of the search index exactly as they were put in.
            "INSERT INTO messages_fts (messages_fts, rowid, body, room, sender, day)
             SELECT 'delete', m.id, m.body, m.room, m.sender, m.day
             FROM temp.pruning p JOIN messages m ON m.id = p.id",
            "DELETE FROM reactions WHERE (room, seq) IN (SELECT room, seq FROM temp.pruning)",
            "DELETE FROM mentions WHERE (room, seq) IN (SELECT room, seq FROM temp.pruning)",
            "DELETE FROM file_uploads WHERE (room, seq) IN (SELECT room, seq FROM temp.pruning)",
            // The highest seq of the log that goes, messages and the changes to them.
            "UPDATE rooms SET pruned_seq = MAX(pruned_seq,
                 (SELECT MAX(seq) FROM temp.pruning p WHERE p.room = rooms.name),
                 COALESCE((SELECT MAX(c.seq) FROM changes c
                           WHERE (c.room, c.target) IN
                               (SELECT room, seq FROM temp.pruning p WHERE p.room = rooms.name)),
                          0))
             WHERE name IN (SELECT room FROM temp.pruning)",
            "DELETE FROM changes WHERE (room, target) IN (SELECT room, seq FROM temp.pruning)",
            "DELETE FROM messages WHERE id IN (SELECT id FROM temp.pruning)",
        ] {
            tx.prepare_cached(statement)?.execute([])?;
        }
        tx.commit()?;
        Ok(deleted)
    }
}

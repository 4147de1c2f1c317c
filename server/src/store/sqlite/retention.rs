//! Retention on the embedded store (`--retain-days`, see [`crate::retention`]): finding
//! the messages sent before a cutoff, and deleting them, with everything that hangs on
//! them, a small batch per transaction.
//!
//! Finding them never blocks the message writer: [`Walker`] reads `(id, ts)` pages in
//! read transactions on a connection of its own, which WAL lets run beside the writer's
//! commits. There is no index on `ts` (it would cost every message one more B-tree
//! insert, on the hot path, to speed up an hourly walk), so a pass walks the table by id.
//!
//! Deleting is [`delete`], which the writer thread runs in a transaction of its own
//! between two group commits (`Store::prune`, through `writer::Pruning`): the database
//! has one writer, so a batch holds acknowledgements up only for as long as it runs,
//! and never fights the writer for SQLite's write lock. Per message it takes out: its
//! words from the search index (exactly as indexed, or FTS5's external-content index
//! would be corrupt), its reactions, mentions, files (their bytes leave the disk at the
//! next file sweep, if no other message shares them), the log entries that changed it,
//! and the row. The room keeps the highest `seq` it pruned (`rooms.pruned_seq`), so its
//! numbering goes on from where it was even when every message in it got old; the
//! writer's cache of each room's last `seq` stays true for the same reason.

use std::path::Path;

use rusqlite::{Connection, params};

use super::connect;
use crate::store::{Durability, StoreError};

/// A read-only connection of its own for retention's walk.
pub struct Walker {
    conn: Connection,
}

/// Messages a page of the walk looks at (reads only).
const WALK_PAGE: i64 = 5_000;

impl Walker {
    /// Opens the store in `data_dir`, which the server's writer has opened (and
    /// migrated) already.
    pub fn open(data_dir: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn = connect(data_dir, durability)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(Self { conn })
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
}

/// Deletes the messages `ids` that are still there and still sent before `before_ms`,
/// inside the write transaction open on `conn` (the writer's); how many went.
pub(super) fn delete(conn: &Connection, ids: &[i64], before_ms: i64) -> Result<usize, StoreError> {
    let ids = serde_json::to_string(ids).map_err(|e| StoreError::Io(e.into()))?;
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS pruning (
             id   INTEGER PRIMARY KEY,
             room TEXT NOT NULL,
             seq  INTEGER NOT NULL
         );
         DELETE FROM temp.pruning;",
    )?;
    let deleted = conn
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
        conn.prepare_cached(statement)?.execute([])?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ChangeRequest, NewChange, NewMessage, SqliteStore, Store, Write};

    fn append(body: &str, ts: i64) -> Write {
        Write::Append(NewMessage {
            room: "general".into(),
            from: "ada".into(),
            name: "Ada".into(),
            body: body.into(),
            client_id: format!("c-{body}"),
            ts,
            reply_to: None,
            mentions: vec!["bob".into()],
            files: Vec::new(),
        })
    }

    fn change(target: u64, what: ChangeRequest) -> Write {
        Write::Change(NewChange {
            room: "general".into(),
            target,
            by: "ada".into(),
            client_id: format!("change-{target}"),
            ts: 50_000,
            what,
        })
    }

    #[test]
    fn pruning_keeps_the_numbering_and_the_search_index_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = SqliteStore::open(dir.path(), Durability::Process).expect("open");
        let mut writes: Vec<Write> = (1..=10).map(|i| append(&format!("old{i}"), i)).collect();
        writes.push(append("new1", 100_000));
        writes.push(append("new2", 100_001));
        // The log's last entries are changes to old messages: seq 13 and 14.
        writes.push(change(2, ChangeRequest::React("👍".into())));
        writes.push(change(
            10,
            ChangeRequest::Edit {
                body: "old10 edited".into(),
                mentions: Vec::new(),
            },
        ));
        store.apply(&writes).expect("stored");

        let walker = Walker::open(dir.path(), Durability::Process).expect("walker");
        let (old, last) = walker.old_after(0, 1_000).expect("walk");
        assert_eq!(old.len(), 10);
        assert_eq!(last, Some(12));
        assert_eq!(walker.old_after(12, 1_000).expect("walk"), (vec![], None));
        assert_eq!(store.prune(&old[..4], 1_000).expect("batch"), 4);
        assert_eq!(store.prune(&old, 1_000).expect("batch"), 6, "the rest");
        assert_eq!(store.prune(&old, 1_000).expect("batch"), 0, "nothing twice");

        let conn = Connection::open(dir.path().join(super::super::DB_FILE)).expect("open");
        conn.execute(
            "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .expect("the search index matches the messages");
        let count = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).expect(sql) };
        assert_eq!(count("SELECT count(*) FROM messages"), 2);
        assert_eq!(count("SELECT count(*) FROM changes"), 0);
        assert_eq!(count("SELECT count(*) FROM reactions"), 0);
        assert_eq!(
            count("SELECT count(*) FROM mentions"),
            2,
            "the new ones' mentions"
        );
        assert_eq!(
            count("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'old10'"),
            0
        );

        // The store that pruned numbers on from 14, the last entry ever made, and so
        // does one opened afresh.
        assert_eq!(appended_seq(&mut store, "after"), 15);
        drop(store);
        let mut store = SqliteStore::open(dir.path(), Durability::Process).expect("reopen");
        let general = store
            .rooms()
            .expect("rooms")
            .into_iter()
            .find(|r| r.name == "general")
            .expect("general");
        assert_eq!(general.last_seq, 15);
        assert_eq!(appended_seq(&mut store, "after the reopening"), 16);
    }

    fn appended_seq(store: &mut SqliteStore, body: &str) -> u64 {
        match store
            .apply(&[append(body, 200_000)])
            .expect("stored")
            .as_slice()
        {
            [crate::store::Written::Appended(crate::store::Appended::Stored(m))] => m.seq,
            other => panic!("expected a stored message, got {other:?}"),
        }
    }
}

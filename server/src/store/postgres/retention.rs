//! Retention on PostgreSQL (`--retain-days`, see [`crate::retention`]): the same walk
//! and batches as the embedded store's (`store::sqlite::retention`), made safe for a
//! cluster in which every node may run it.
//!
//! - A batch's transaction first tries a transaction-level advisory lock: while one
//!   node deletes a batch, another that tries finds it taken and ends its pass (the
//!   node holding it will get to the rest). Nothing waits for it, so no node's pass
//!   can hold up another's chat.
//! - The rows are taken `FOR UPDATE SKIP LOCKED`: a message a writer is changing right
//!   now (its row locked) is skipped, not waited for, and the next pass takes it.
//!   A change that commits after its message went finds it gone and is refused as a
//!   change of an unknown message, as for any deleted one.
//! - Nothing a node keeps in memory follows from the rows deleted: `rooms.last_seq`
//!   still counts the log, so numbering goes on and the cluster's room heads (what
//!   nodes compare to find what they missed) do not move. Search needs nothing: its
//!   index is a column of the row.

use super::{PgPool, StoreError};

/// First key of the advisory lock batches take (the second is [`BATCH_LOCK`]).
const RETENTION_LOCKS: i32 = 0x7265_746e;
const BATCH_LOCK: i32 = 1;

/// Messages a page of the walk looks at (reads only).
const WALK_PAGE: i64 = 5_000;

/// Retention on the cluster's database.
pub struct PgPruner {
    pool: PgPool,
}

impl PgPruner {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// From a page of messages with ids above `after_id` (in id order), those sent
    /// before `before_ms`, and the last id the page looked at (`None`: the walk is over).
    pub fn old_after(
        &self,
        after_id: i64,
        before_ms: i64,
    ) -> Result<(Vec<i64>, Option<i64>), StoreError> {
        let mut client = self.pool.get()?;
        let rows = client.query(
            "SELECT id, ts FROM messages WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after_id, &WALK_PAGE],
        )?;
        let mut old = Vec::new();
        let mut last = None;
        for row in rows {
            let (id, ts): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            last = Some(id);
            if ts < before_ms {
                old.push(id);
            }
        }
        Ok((old, last))
    }

    /// Deletes the messages `ids` still there, sent before `before_ms` and not being
    /// changed right now, with what hangs on them, in one transaction: how many went,
    /// or `None` when another node is deleting a batch.
    pub fn delete(&self, ids: &[i64], before_ms: i64) -> Result<Option<usize>, StoreError> {
        let mut client = self.pool.get()?;
        let mut tx = client.transaction()?;
        let ours: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, $2)",
                &[&RETENTION_LOCKS, &BATCH_LOCK],
            )?
            .try_get(0)?;
        if !ours {
            return Ok(None);
        }
        let gone = tx.query(
            "DELETE FROM messages WHERE id IN (
                 SELECT id FROM messages WHERE id = ANY($1) AND ts < $2
                 FOR UPDATE SKIP LOCKED
             )
             RETURNING room, seq",
            &[&ids, &before_ms],
        )?;
        let mut rooms = Vec::with_capacity(gone.len());
        let mut seqs = Vec::with_capacity(gone.len());
        for row in &gone {
            rooms.push(row.try_get::<_, String>(0)?);
            seqs.push(row.try_get::<_, i64>(1)?);
        }
        for statement in [
            "DELETE FROM reactions t USING unnest($1::text[], $2::bigint[]) AS g(room, seq)
             WHERE t.room = g.room AND t.seq = g.seq",
            "DELETE FROM mentions t USING unnest($1::text[], $2::bigint[]) AS g(room, seq)
             WHERE t.room = g.room AND t.seq = g.seq",
            "DELETE FROM file_uploads t USING unnest($1::text[], $2::bigint[]) AS g(room, seq)
             WHERE t.room = g.room AND t.seq = g.seq",
            "DELETE FROM changes t USING unnest($1::text[], $2::bigint[]) AS g(room, seq)
             WHERE t.room = g.room AND t.target = g.seq",
        ] {
            tx.execute(statement, &[&rooms, &seqs])?;
        }
        tx.commit()?;
        Ok(Some(gone.len()))
    }
}

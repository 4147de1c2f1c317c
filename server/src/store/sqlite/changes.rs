//! Changes to messages — edits, deletions, reactions — decided and stored inside the
//! writer's transaction.
//!
//! Whether a change may be made depends on the message as stored (whose it is, whether
//! it is deleted, how many reactions it has), so the rules are checked here, against the
//! database, in the same transaction that stores the change: no other write can slip in
//! between the check and the change. A change that changes something takes the room's
//! next `seq`, is logged in `changes` (who, what, when; never the text) and sets the
//! message's `rev`. One that would change nothing (a reaction already there) takes no
//! `seq`; a refused one neither.

use std::collections::HashMap;

use confab_shared::{Change, ChangeKind, limits};
use rusqlite::{Connection, OptionalExtension, params};

use super::{as_sql, claim_seq, insert_mentions, last_seq, search};
use crate::store::{ChangeRequest, Changed, NewChange, Refused, StoreError};

/// The message a change is about, as stored.
struct Target {
    id: i64,
    sender: String,
    body: String,
    ts: i64,
    deleted: bool,
    rev: u64,
}

/// Decides and stores one change.
pub(super) fn apply(
    conn: &Connection,
    cache: &mut HashMap<String, u64>,
    c: &NewChange,
) -> Result<Changed, StoreError> {
    let earlier: Option<u64> = conn
        .prepare_cached("SELECT seq FROM changes WHERE actor = ?1 AND client_id = ?2")?
        .query_row(params![c.by, c.client_id], |row| row.get(0))
        .optional()?;
    if let Some(seq) = earlier {
        return Ok(Changed::Duplicate { seq });
    }
    let target: Option<Target> = conn
        .prepare_cached(
            "SELECT id, sender, body, ts, deleted, rev FROM messages WHERE room = ?1 AND seq = ?2",
        )?
        .query_row(params![c.room, as_sql(c.target)], |row| {
            Ok(Target {
                id: row.get(0)?,
                sender: row.get(1)?,
                body: row.get(2)?,
                ts: row.get(3)?,
                deleted: row.get(4)?,
                rev: row.get(5)?,
            })
        })
        .optional()?;
    let Some(target) = target else {
        return Ok(Changed::Refused(Refused::UnknownMessage));
    };
    let unchanged = Changed::Unchanged {
        rev: target.rev.max(c.target),
    };
    let mine = target.sender.eq_ignore_ascii_case(&c.by);
    let change = match &c.what {
        ChangeRequest::Edit { .. } | ChangeRequest::React(_) if target.deleted => {
            return Ok(Changed::Refused(Refused::UnknownMessage));
        }
        ChangeRequest::Edit { .. } if !mine => return Ok(Changed::Refused(Refused::NotYours)),
        ChangeRequest::Edit { body, .. } if *body == target.body => return Ok(unchanged),
        ChangeRequest::Edit { body, .. } => ChangeKind::Edited { body: body.clone() },
        ChangeRequest::Delete { .. } if target.deleted => return Ok(unchanged),
        ChangeRequest::Delete { any } if !mine && !any => {
            return Ok(Changed::Refused(Refused::NotYours));
        }
        ChangeRequest::Delete { .. } => ChangeKind::Deleted,
        ChangeRequest::React(emoji) => match reaction_room(conn, c, emoji)? {
            Some(refused) => return Ok(refused),
            None => ChangeKind::Reacted {
                emoji: emoji.clone(),
            },
        },
        ChangeRequest::Unreact(emoji) if !has_reaction(conn, c, emoji)? => return Ok(unchanged),
        ChangeRequest::Unreact(emoji) => ChangeKind::Unreacted {
            emoji: emoji.clone(),
        },
    };
    let seq = last_seq(conn, cache, &c.room)? + 1;
    let (room, target_seq) = (c.room.as_str(), as_sql(c.target));
    match &c.what {
        ChangeRequest::Edit { body, mentions } => {
            // Out of the search index as it was, back in as it is.
            let indexed = search::Indexed {
                id: target.id,
                body: &target.body,
                room,
                sender: &target.sender,
                ts: target.ts,
            };
            search::unindex(conn, &indexed)?;
            conn.prepare_cached(
                "UPDATE messages SET body = ?3, edited_at = ?4, rev = ?5 WHERE room = ?1 AND seq = ?2",
            )?
            .execute(params![room, target_seq, body, c.ts, as_sql(seq)])?;
            search::index(conn, &search::Indexed { body, ..indexed })?;
            conn.prepare_cached("DELETE FROM mentions WHERE room = ?1 AND seq = ?2")?
                .execute(params![room, target_seq])?;
            insert_mentions(conn, room, c.target, mentions)?;
        }
        ChangeRequest::Delete { .. } => {
            // The text goes, not only out of sight (`secure_delete` zeroes what the
            // update frees, FTS5's `secure-delete` its words in the search index); so do
            // the reactions and the mentions it made. The tombstone stays indexed (room,
            // sender and day, no words), as every row of `messages` is.
            let indexed = search::Indexed {
                id: target.id,
                body: &target.body,
                room,
                sender: &target.sender,
                ts: target.ts,
            };
            search::unindex(conn, &indexed)?;
            conn.prepare_cached(
                "UPDATE messages SET body = '', deleted = 1, edited_at = NULL, rev = ?3
                 WHERE room = ?1 AND seq = ?2",
            )?
            .execute(params![room, target_seq, as_sql(seq)])?;
            search::index(
                conn,
                &search::Indexed {
                    body: "",
                    ..indexed
                },
            )?;
            conn.prepare_cached("DELETE FROM reactions WHERE room = ?1 AND seq = ?2")?
                .execute(params![room, target_seq])?;
            conn.prepare_cached("DELETE FROM mentions WHERE room = ?1 AND seq = ?2")?
                .execute(params![room, target_seq])?;
            // Its files go with it; their bytes leave the disk at the next sweep.
            conn.prepare_cached("DELETE FROM file_uploads WHERE room = ?1 AND seq = ?2")?
                .execute(params![room, target_seq])?;
        }
        ChangeRequest::React(emoji) => {
            conn.prepare_cached(
                "INSERT INTO reactions (room, seq, emoji, user, added) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![room, target_seq, emoji, c.by, as_sql(seq)])?;
            set_rev(conn, room, target_seq, seq)?;
        }
        ChangeRequest::Unreact(emoji) => {
            conn.prepare_cached(
                "DELETE FROM reactions WHERE room = ?1 AND seq = ?2 AND emoji = ?3 AND user = ?4",
            )?
            .execute(params![room, target_seq, emoji, c.by])?;
            set_rev(conn, room, target_seq, seq)?;
        }
    }
    let (kind, emoji) = match &change {
        ChangeKind::Edited { .. } => ("edited", None),
        ChangeKind::Deleted => ("deleted", None),
        ChangeKind::Reacted { emoji } => ("reacted", Some(emoji)),
        ChangeKind::Unreacted { emoji } => ("unreacted", Some(emoji)),
    };
    conn.prepare_cached(
        "INSERT INTO changes (room, seq, target, kind, actor, emoji, client_id, ts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        room,
        as_sql(seq),
        target_seq,
        kind,
        c.by,
        emoji,
        c.client_id,
        c.ts
    ])?;
    claim_seq(cache, room, seq);
    Ok(Changed::Stored(Change {
        room: c.room.clone(),
        seq,
        target: c.target,
        by: c.by.clone(),
        ts: c.ts,
        change,
    }))
}

fn set_rev(conn: &Connection, room: &str, target: i64, seq: u64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE messages SET rev = ?3 WHERE room = ?1 AND seq = ?2")?
        .execute(params![room, target, as_sql(seq)])?;
    Ok(())
}

fn has_reaction(conn: &Connection, c: &NewChange, emoji: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM reactions WHERE room = ?1 AND seq = ?2 AND emoji = ?3 AND user = ?4",
        )?
        .query_row(params![c.room, as_sql(c.target), emoji, c.by], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Why a reaction cannot be added (there already, or the message is full), if it cannot.
fn reaction_room(
    conn: &Connection,
    c: &NewChange,
    emoji: &str,
) -> Result<Option<Changed>, StoreError> {
    if has_reaction(conn, c, emoji)? {
        let rev: u64 = conn
            .prepare_cached("SELECT rev FROM messages WHERE room = ?1 AND seq = ?2")?
            .query_row(params![c.room, as_sql(c.target)], |row| row.get(0))?;
        return Ok(Some(Changed::Unchanged {
            rev: rev.max(c.target),
        }));
    }
    let (total, emoji_used, distinct): (usize, bool, usize) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(emoji = ?3), 0) > 0, COUNT(DISTINCT emoji)
             FROM reactions WHERE room = ?1 AND seq = ?2",
        )?
        .query_row(params![c.room, as_sql(c.target), emoji], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    let full = total >= limits::MAX_REACTIONS_PER_MESSAGE
        || (!emoji_used && distinct >= limits::MAX_EMOJI_PER_MESSAGE);
    Ok(full.then_some(Changed::Refused(Refused::TooManyReactions)))
}

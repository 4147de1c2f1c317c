//! Changes to messages (edits, deletions, reactions) decided and stored inside the
//! writer's transaction, on PostgreSQL: the rules of store/sqlite/changes.rs (whose
//! module documentation says why they are decided there), checked against the rows as
//! this transaction sees them once it holds the room's lock, so no other node's write
//! can slip in between the check and the change.

use confab_shared::{Change, ChangeKind, limits};

use super::{Db, as_sql, from_sql, insert_mentions, next_seq};
use crate::store::{ChangeRequest, Changed, NewChange, Refused, StoreError};

/// The message a change is about, as stored.
struct Target {
    sender: String,
    body: String,
    deleted: bool,
    rev: u64,
}

/// Decides and stores one change; the batch holds the lock on `c.room`.
pub(super) fn apply(db: &mut Db<'_>, c: &NewChange) -> Result<Changed, StoreError> {
    let earlier = db.query_opt(
        "SELECT seq FROM changes WHERE actor = $1 AND client_id = $2",
        &[&c.by, &c.client_id],
    )?;
    if let Some(earlier) = earlier {
        return Ok(Changed::Duplicate {
            seq: from_sql(earlier.try_get(0)?),
        });
    }
    let (room, target_seq) = (c.room.as_str(), as_sql(c.target));
    let target = db
        .query_opt(
            "SELECT sender, body, deleted, rev FROM messages WHERE room = $1 AND seq = $2",
            &[&room, &target_seq],
        )?
        .map(|row| -> Result<Target, StoreError> {
            Ok(Target {
                sender: row.try_get(0)?,
                body: row.try_get(1)?,
                deleted: row.try_get(2)?,
                rev: from_sql(row.try_get(3)?),
            })
        })
        .transpose()?;
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
        ChangeRequest::React(emoji) => match reaction_room(db, c, emoji, &unchanged)? {
            Some(refused) => return Ok(refused),
            None => ChangeKind::Reacted {
                emoji: emoji.clone(),
            },
        },
        ChangeRequest::Unreact(emoji) if !has_reaction(db, c, emoji)? => return Ok(unchanged),
        ChangeRequest::Unreact(emoji) => ChangeKind::Unreacted {
            emoji: emoji.clone(),
        },
    };
    let seq = as_sql(next_seq(db, room)?);
    match &c.what {
        ChangeRequest::Edit { body, mentions } => {
            db.execute(
                "UPDATE messages SET body = $3, edited_at = $4, rev = $5
                 WHERE room = $1 AND seq = $2",
                &[&room, &target_seq, body, &c.ts, &seq],
            )?;
            db.execute(
                "DELETE FROM mentions WHERE room = $1 AND seq = $2",
                &[&room, &target_seq],
            )?;
            insert_mentions(db, room, c.target, mentions)?;
        }
        ChangeRequest::Delete { .. } => {
            // The text goes, and so do the reactions, the mentions and the files (their
            // bytes leave the disk at the next sweep).
            db.execute(
                "UPDATE messages SET body = '', deleted = TRUE, edited_at = NULL, rev = $3
                 WHERE room = $1 AND seq = $2",
                &[&room, &target_seq, &seq],
            )?;
            for sql in [
                "DELETE FROM reactions WHERE room = $1 AND seq = $2",
                "DELETE FROM mentions WHERE room = $1 AND seq = $2",
                "DELETE FROM file_uploads WHERE room = $1 AND seq = $2",
            ] {
                db.execute(sql, &[&room, &target_seq])?;
            }
        }
        ChangeRequest::React(emoji) => {
            db.execute(
                "INSERT INTO reactions (room, seq, emoji, username, added)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&room, &target_seq, emoji, &c.by, &seq],
            )?;
            set_rev(db, room, target_seq, seq)?;
        }
        ChangeRequest::Unreact(emoji) => {
            db.execute(
                "DELETE FROM reactions
                 WHERE room = $1 AND seq = $2 AND emoji = $3 AND username = $4",
                &[&room, &target_seq, emoji, &c.by],
            )?;
            set_rev(db, room, target_seq, seq)?;
        }
    }
    let (kind, emoji) = match &change {
        ChangeKind::Edited { .. } => ("edited", None),
        ChangeKind::Deleted => ("deleted", None),
        ChangeKind::Reacted { emoji } => ("reacted", Some(emoji)),
        ChangeKind::Unreacted { emoji } => ("unreacted", Some(emoji)),
    };
    db.execute(
        "INSERT INTO changes (room, seq, target, kind, actor, emoji, client_id, ts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &room,
            &seq,
            &target_seq,
            &kind,
            &c.by,
            &emoji,
            &c.client_id,
            &c.ts,
        ],
    )?;
    Ok(Changed::Stored(Change {
        room: c.room.clone(),
        seq: from_sql(seq),
        target: c.target,
        by: c.by.clone(),
        ts: c.ts,
        change,
    }))
}

fn set_rev(db: &mut Db<'_>, room: &str, target: i64, seq: i64) -> Result<(), StoreError> {
    db.execute(
        "UPDATE messages SET rev = $3 WHERE room = $1 AND seq = $2",
        &[&room, &target, &seq],
    )?;
    Ok(())
}

fn has_reaction(db: &mut Db<'_>, c: &NewChange, emoji: &str) -> Result<bool, StoreError> {
    Ok(db
        .query_opt(
            "SELECT 1 FROM reactions
             WHERE room = $1 AND seq = $2 AND emoji = $3 AND username = $4",
            &[&c.room, &as_sql(c.target), &emoji, &c.by],
        )?
        .is_some())
}

/// Why a reaction cannot be added (there already: `unchanged`; or the message is full),
/// if it cannot.
fn reaction_room(
    db: &mut Db<'_>,
    c: &NewChange,
    emoji: &str,
    unchanged: &Changed,
) -> Result<Option<Changed>, StoreError> {
    if has_reaction(db, c, emoji)? {
        return Ok(Some(unchanged.clone()));
    }
    let row = db.query_one(
        "SELECT COUNT(*), COALESCE(bool_or(emoji = $3), FALSE), COUNT(DISTINCT emoji)
         FROM reactions WHERE room = $1 AND seq = $2",
        &[&c.room, &as_sql(c.target), &emoji],
    )?;
    let total = usize::try_from(row.try_get::<_, i64>(0)?).unwrap_or(usize::MAX);
    let emoji_used: bool = row.try_get(1)?;
    let distinct = usize::try_from(row.try_get::<_, i64>(2)?).unwrap_or(usize::MAX);
    let full = total >= limits::MAX_REACTIONS_PER_MESSAGE
        || (!emoji_used && distinct >= limits::MAX_EMOJI_PER_MESSAGE);
    Ok(full.then_some(Changed::Refused(Refused::TooManyReactions)))
}
